"""Docker's shell-word lexer: variable expansion and word splitting for Dockerfile values.

This follows the semantics of the lexer Docker's builders use (moby/buildkit frontend/dockerfile/shell),
not a POSIX shell: no globbing, no command substitution, no arithmetic. It is pure and stdlib only.

Public API (stable; additions only):

    EXPANDED_INSTRUCTIONS: frozenset[str]
        The instructions whose arguments the builder expands with the build's environment (ENV + ARG):
        ADD ARG COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR. FROM is expanded with the global
        (pre-FROM) ARGs only; RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and MAINTAINER never are (their shell does it).
        Flags are expanded for COPY/ADD (--chown, --chmod, --from) and FROM (--platform).

    expand(word, env, escape="\\\\") -> str
        Docker's ProcessWord: $x, ${x}, ${x:-w}, ${x-w}, ${x:+w}, ${x+w}, ${x:?w}, ${x?w}, and BuildKit's
        ${x#pat} ${x##pat} ${x%pat} ${x%%pat} ${x/pat/repl} ${x//pat/repl} ('*' and '?' patterns); quotes removed
        ('...' literal, "..." expanding $ and honouring the escape before " $ and itself); the escape
        character outside quotes takes the next character literally. Unset variables expand to "".
        Raises InvalidArgument on a syntax error (unterminated quote, bad substitution, ${x?} unset...).

    split_words(text, env, escape="\\\\") -> list[str]
        Docker's ProcessWords: the same expansion, then a split on unquoted whitespace (whitespace coming
        from a variable's value splits too; quoted text never does; an empty "" yields no word).

    parse_words(text, escape="\\\\") -> list[str]
        The parser's quote-aware word split used for ENV/LABEL/ARG (moby parseWords): quotes and escapes are
        KEPT in the words (expansion happens later, per word, with expand()).

    parse_key_values(text, keyword="ENV", escape="\\\\") -> list[tuple[str, str]]
        ENV/LABEL arguments as (key, raw value) pairs, unexpanded: `k=v k2="v 2"` (every word needs a '=')
        or the legacy `ENV k v w` form (key, "v w"). Pass each key and value to expand().

May import: berth.errors only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from berth.errors import InvalidArgument

EXPANDED_INSTRUCTIONS: frozenset[str] = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Go's unicode.IsSpace for the characters that can appear on one Dockerfile line.
_SPACE = frozenset(" \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                   "\u200a\u2028\u2029\u202f\u205f\u3000")


def is_space(ch: str) -> bool:
    return ch in _SPACE


class _Words:
    """Accumulates ProcessWords' split: raw text never splits, expanded or plain text splits on spaces."""

    __slots__ = ("word", "words", "in_word")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, *,
                 raw_quotes: bool = False, raw_escapes: bool = False, skip_unset: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise InvalidArgument(f"invalid escape token {escape!r}: must be ` or \\")
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def process(self, stop: str = "", raw_escapes: bool | None = None) -> tuple[str, list[str]]:
        keep_escapes = self.raw_escapes if raw_escapes is None else raw_escapes
        result: list[str] = []
        words = _Words()
        while self.peek() != "":
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.finish()
            if ch in ("'", '"', "$"):
                if ch == "'":
                    tmp = self._single_quote()
                elif ch == '"':
                    tmp = self._double_quote()
                else:
                    tmp = self._dollar()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw_string(tmp)
                continue
            ch = self.next()
            if ch == self.escape:
                if keep_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = self.next()
                if ch == "":
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise InvalidArgument(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def _single_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == "":
                raise InvalidArgument("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            nxt = self.peek()
            if nxt == "":
                raise InvalidArgument("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self._dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                after = self.peek()
                if after == "":
                    continue  # an escape at the end of the word is dropped
                if after in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def _name(self) -> str:
        name: list[str] = []
        while self.peek() != "":
            ch = self.peek()
            if not name and ch.isdecimal():
                while self.peek() != "" and self.peek().isdecimal():
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def _lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def _dollar(self) -> str:
        self.next()  # the '$'
        if self.peek() != "{":
            name = self._name()
            if name == "":
                return "$"
            value, found = self._lookup(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.next()  # the '{'
        first = self.peek()
        if first == "":
            raise InvalidArgument("syntax error: missing '}'")
        if first in ("{", "}", ":"):
            raise InvalidArgument("syntax error: bad substitution")
        name = self._name()
        ch = self.next()
        if ch == "}":
            value, found = self._lookup(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        modifier = ch
        colon = False
        if ch == ":":
            colon = True
            modifier = self.next()
        shown = (":" if colon else "") + modifier
        if modifier not in ("-", "+", "?", "#", "%"):
            if modifier == "":
                raise InvalidArgument("syntax error: missing '}'")
            raise InvalidArgument(f"unsupported modifier ({shown}) in substitution")
        pattern = modifier in ("#", "%")
        if colon and pattern:
            raise InvalidArgument(f"unsupported modifier ({shown}) in substitution")
        word = self._until("}", "syntax error: missing '}'", raw_escapes=pattern)
        value, found = self._lookup(name)
        if not found and self.skip_unset:
            return "${" + name + shown + word + "}"
        unset = not found or (colon and value == "")
        if modifier == "-":
            return word if unset else value
        if modifier == "+":
            return "" if unset else word
        if pattern:
            # '#' trims the shortest matching prefix, '##' the longest; '%' and '%%' the same for suffixes
            greedy = word.startswith(modifier)
            if greedy:
                word = word[1:]
            if modifier == "#":
                return _trim_prefix(word, value, greedy)
            return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]
        # '?'
        if not found:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        if colon and value == "":
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be empty'}")
        return value

    def _until(self, stop: str, missing: str, raw_escapes: bool) -> str:
        try:
            return self.process(stop, raw_escapes)[0]
        except InvalidArgument:
            if self.peek() == "":
                raise InvalidArgument(missing) from None
            raise

    def _replace(self, name: str) -> str:
        """${x/pattern/replacement} (the first match) and ${x//pattern/replacement} (every match)."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self._until("/", "syntax error: missing '/' in ${}", raw_escapes=True)
        replacement = self._until("}", "syntax error: missing '}'", raw_escapes=True)
        value, found = self._lookup(name)
        if not found and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        match = regex.search(value)
        if match is None:
            return value
        return value[:match.start()] + replacement + value[match.end():]


_PATTERN_SPECIALS = frozenset("[]{}.+()|^$")


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern ('*' shortest or longest run, '?' one character, backslash escapes; no brackets) as a
    regular expression, as Docker's lexer converts it."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue  # the escape was for the ${...} syntax, not for the pattern
            if nxt not in ("*", "?", "\\"):
                raise InvalidArgument(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
            i += 1
        elif ch in _PATTERN_SPECIALS:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy, anchored=True).search(value)
    return value[match.end():] if match is not None else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern read backwards, each escape kept in front of the character it escapes."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _go_replace_all(regex: re.Pattern[str], value: str, template: str) -> str:
    """regexp.ReplaceAllString: an empty match right after another match is not replaced (Python's re.sub
    would), and the search always advances by at least one character."""
    out: list[str] = []
    last_end = 0
    pos = 0
    while pos <= len(value):
        match = regex.search(value, pos)
        if match is None:
            break
        start, end = match.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(_go_template(template, match.group(0)))
        last_end = end
        pos = pos + 1 if pos + 1 > end else end
    out.append(value[last_end:])
    return "".join(out)


def _go_template(template: str, whole: str) -> str:
    """regexp.ReplaceAllString's template: $$ is a dollar, $0/${0} the match, other names (no groups) empty."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            name = template[i + 2:end] if end > i + 2 else ""
            if end < 0 or not re.fullmatch(r"\w+", name):
                out.append("$")
                i += 1
                continue
            i = end + 1
        else:
            m = re.match(r"\w+", template[i + 1:])
            if m is None:
                out.append("$")
                i += 1
                continue
            name = m.group(0)
            i += 1 + len(name)
        if name == "0":
            out.append(whole)
    return "".join(out)


# how an expansion error starts, as Docker words it (the builder passes such errors on unchanged)
EXPANSION_FAILED = "failed to process "


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Docker's ProcessWord: expand variables and remove quotes; no word splitting."""
    try:
        return _Lexer(word, env, escape).process()[0]
    except InvalidArgument as exc:
        raise InvalidArgument(f"{EXPANSION_FAILED}{go_quote(word)}: {exc}") from None


def split_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Docker's ProcessWords: expand, then split on unquoted whitespace."""
    try:
        return _Lexer(text, env, escape).process()[1]
    except InvalidArgument as exc:
        raise InvalidArgument(f"{EXPANSION_FAILED}{go_quote(text)}: {exc}") from None


def heredoc_line_words(line: str) -> list[str]:
    """The words of an instruction line as the parser's heredoc detection sees them.

    ProcessWords with quotes and escapes kept, variables left as written, the backslash escape whatever the
    directive says; a line the lexer rejects has no heredocs.
    """
    try:
        return _Lexer(line, {}, "\\", raw_quotes=True, raw_escapes=True, skip_unset=True).process()[1]
    except InvalidArgument:
        return []


def delimiter_words(text: str, *, raw_quotes: bool) -> list[str]:
    """ProcessWords of a heredoc delimiter, unset variables left as written, quotes kept or removed."""
    return _Lexer(text, {}, "\\", raw_quotes=raw_quotes, skip_unset=True).process()[1]


def go_quote(text: str) -> str:
    """Go's %q for the texts that appear in Docker's error messages."""
    return json.dumps(text, ensure_ascii=False)


def parse_words(text: str, escape: str = "\\") -> list[str]:
    """The parser's split of ENV/LABEL/ARG arguments: on unquoted whitespace, quotes and escapes kept."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if not in_word and not quote:
            if is_space(ch):
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue  # a trailing escape inside quotes is dropped
                word.append(ch)
                i += 1
                ch = text[i]
            word.append(ch)
            i += 1
            continue
        if is_space(ch):
            if blank_ok or word:
                words.append("".join(word))
            word = []
            blank_ok = False
            in_word = False
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        elif ch == escape:
            if i + 1 == n:
                i += 1
                continue  # a trailing escape is dropped
            word.append(ch)
            i += 1
            ch = text[i]
        word.append(ch)
        i += 1
    if (in_word or quote) and (blank_ok or word):
        words.append("".join(word))
    return words


def _split_whitespace(text: str, limit: int = 0) -> list[str]:
    """Go's regexp `[\\t\\v\\f\\r ]+` Split(text, limit) (limit 0: no limit)."""
    out: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] in " \t\v\f\r":
            if limit and len(out) == limit - 1:
                break
            j = i
            while j < n and text[j] in " \t\v\f\r":
                j += 1
            out.append(text[start:i])
            start = i = j
            continue
        i += 1
    out.append(text[start:])
    return out


def split_fields(text: str) -> list[str]:
    """The parser's whitespace split for FROM, EXPOSE and COPY/ADD/VOLUME shell forms (no quote handling)."""
    if text == "":
        return []
    return _split_whitespace(text)


def parse_key_values(text: str, keyword: str = "ENV", escape: str = "\\") -> list[tuple[str, str]]:
    """ENV/LABEL arguments as unexpanded (key, value) pairs, in Docker's two forms."""
    words = parse_words(text, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _split_whitespace(text.strip(" \t\v\f\r\n"), 2)
        if len(parts) < 2:
            raise InvalidArgument(f"{keyword} must have two arguments")
        return [(parts[0], parts[1])]
    pairs: list[tuple[str, str]] = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        pairs.append((key, value))
    return pairs
