"""Dockerfile parser: text -> typed instructions grouped in stages. Pure, stdlib only.

It follows Docker's parser (moby/buildkit frontend/dockerfile/parser + instructions), which the classic builder
uses too: parser directives, line continuations with the escape character (comment lines and empty lines inside
a continuation are skipped), JSON-form detection (text starting with '[' that decodes as a JSON array; an array
holding a non-string is an error, any other invalid JSON falls back to the shell form), `--flag` extraction and
per-instruction flag validation, heredocs for RUN/COPY/ADD, and the per-instruction argument checks.
Variable expansion is NOT done here (see berth.build.shellwords.expand): every value is kept as written.

Public API (stable; additions only):

    parse(text: str) -> Dockerfile                     raises DockerfileError

    class DockerfileError(InvalidArgument)              .line: int | None, .reason: str
        str(err) == "dockerfile parse error line <line>: <reason>", the text of dockerd's classic builder
        (without a line: just the reason). Reasons are dockerd 20.10's texts. (dockerd words the failures of
        its line parser -- JSON arrays, ENV syntax, escape directive -- "failed to parse Dockerfile: <reason>",
        without the line; berth keeps the line for those too.)

    @dataclass(frozen=True) Heredoc(name, content, expand, chomp, fd=0)
        content: the raw lines with their line endings as written ("\\n", or "\\r\\n"); text() is what the file /
        script receives (leading tabs removed from every line when chomp, `<<-`). expand is False when any part
        of the delimiter was quoted.

    @dataclass(frozen=True) Instruction(keyword, args, json_form, flags, heredocs, line, original, end_line,
                                        trigger=None)
        keyword: upper case ("RUN"). flags: ((name, value), ...) in the order written, names without "--";
        booleans normalised to "true"/"false" (`--link` -> ("link", "true")); list flags (--mount, --exclude)
        once per occurrence. line/end_line: first and last physical line (1-based; heredoc bodies included
        in end_line). original: the instruction's text as Docker prints it in `Step i/N : ...` (continuations
        joined, comment lines dropped, surrounding blanks trimmed, heredoc bodies not included).
        args, as Docker's parser splits them (all unexpanded, quotes kept):
          RUN CMD ENTRYPOINT SHELL  JSON form: the array; shell form: (text,) -- the raw text after the flags;
                                    nothing: ()
          HEALTHCHECK               ("NONE",) or ("CMD", *command) where command is as for CMD (json_form tells)
          COPY ADD VOLUME           JSON form: the array; shell form: the words split on spaces/tabs (no quote
                                    handling, as Docker), e.g. ("src1", "src2", "/dest"); "<<EOF" words name
                                    heredocs (Instruction.heredocs)
          FROM EXPOSE               the words split on spaces/tabs ("image", "AS", "name") / ("80/tcp", "53/udp");
                                    Docker expands each EXPOSE word with shellwords.split_words (`EXPOSE $PORTS`
                                    with PORTS="80 443" gives two ports), every other value with expand()
          ENV LABEL                 flattened raw pairs (k1, v1, k2, v2, ...); `ENV k v w` -> ("k", "v w");
                                    use Instruction.pairs(). Expand key and value with shellwords.expand.
          ARG                       one element per declared arg, "name" or "name=default" (raw); use arg_pairs()
          USER WORKDIR STOPSIGNAL MAINTAINER   (text,)
          ONBUILD                   (expression,) -- the trigger text that goes into the image config's OnBuild;
                                    trigger: the parsed inner Instruction (never ONBUILD, FROM or MAINTAINER)

    @dataclass(frozen=True) Stage(index, name, base, platform, instructions, line, from_instruction)
        name: the AS name lower-cased or None; base and platform unexpanded.

    @dataclass(frozen=True) Dockerfile(escape, syntax, global_args, stages, warnings=())
        warnings: the parser's messages dockerd prints before "Step 1/N" (each followed by a newline), e.g.
        "[WARNING]: Empty continuation line found in:\n    RUN a b".
        Note for step counting: the classic builder counts the global ARGs as steps ("Step 1/N : ARG x"), so
        N = len(global_args) + sum(1 + len(stage.instructions)).
        stage(name_or_index: str, allow_index=True) -> Stage   (a stage name, case-insensitive, or a decimal
        index; raises InvalidArgument "failed to reach build target X in Dockerfile"; --target takes names only
        in Docker: allow_index=False)

    @dataclass(frozen=True) Healthcheck(test, interval_ns, timeout_ns, start_period_ns, retries)
    healthcheck(instruction) -> Healthcheck   Docker's HealthConfig for a HEALTHCHECK (test ("NONE",),
        ("CMD", ...) or ("CMD-SHELL", text)); durations 0 when not given. Validated at parse time already.
    parse_go_duration(text) -> int            Go's time.ParseDuration in nanoseconds ("1m30s")
    KEYWORDS: frozenset[str]                  the instructions Docker knows

May import: berth.errors, berth.build.shellwords.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from berth.build import shellwords
from berth.build.shellwords import go_quote
from berth.errors import InvalidArgument


class DockerfileError(InvalidArgument):
    """A Dockerfile that Docker's parser would refuse; carries the line of the offending instruction."""

    def __init__(self, line: int | None, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"dockerfile parse error line {line}: {reason}" if line is not None else reason)


@dataclass(frozen=True, slots=True)
class Heredoc:
    name: str
    content: str
    expand: bool
    chomp: bool
    fd: int = 0

    def text(self) -> str:
        """The content as the command or file receives it (`<<-` strips leading tabs from each line)."""
        return _LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    args: tuple[str, ...]
    json_form: bool
    flags: tuple[tuple[str, str], ...]
    heredocs: tuple[Heredoc, ...]
    line: int
    original: str
    end_line: int = 0
    trigger: Instruction | None = None

    def flag(self, name: str) -> str | None:
        """The last value given for a flag, or None when absent."""
        value = None
        for key, val in self.flags:
            if key == name:
                value = val
        return value

    def flag_values(self, name: str) -> list[str]:
        """Every value given for a (list) flag, in order."""
        return [val for key, val in self.flags if key == name]

    def pairs(self) -> list[tuple[str, str]]:
        """ENV and LABEL: the raw (key, value) pairs."""
        return list(zip(self.args[0::2], self.args[1::2], strict=True))

    def arg_pairs(self) -> list[tuple[str, str | None]]:
        """ARG: (name, raw default or None)."""
        out: list[tuple[str, str | None]] = []
        for arg in self.args:
            name, sep, value = arg.partition("=")
            out.append((name, value if sep else None))
        return out


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    name: str | None
    base: str
    platform: str | None
    instructions: tuple[Instruction, ...]
    line: int
    from_instruction: Instruction | None = None


@dataclass(frozen=True, slots=True)
class Dockerfile:
    escape: str
    syntax: str | None
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = field(default=())

    def stage(self, name_or_index: str, allow_index: bool = True) -> Stage:
        """A stage by name (case-insensitive) or, with allow_index, by its decimal index (COPY --from=0).
        docker build --target takes names only: pass allow_index=False for it."""
        wanted = name_or_index.lower()
        for stage in self.stages:
            if stage.name is not None and stage.name == wanted:
                return stage
        if allow_index and wanted.isdecimal() and wanted.isascii() and int(wanted) < len(self.stages):
            return self.stages[int(wanted)]
        raise InvalidArgument(f"failed to reach build target {name_or_index} in Dockerfile")


@dataclass(frozen=True, slots=True)
class Healthcheck:
    test: tuple[str, ...]
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    retries: int = 0


_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_BOM = "\ufeff"

_STRING, _STRINGS, _BOOL = "string", "strings", "bool"
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING},
    "COPY": {"from": _STRING, "chown": _STRING, "chmod": _STRING, "link": _BOOL, "parents": _BOOL,
             "exclude": _STRINGS},
    "ADD": {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STRING,
            "exclude": _STRINGS},
    "HEALTHCHECK": {"interval": _STRING, "timeout": _STRING, "start-period": _STRING,
                    "start-interval": _STRING, "retries": _STRING},
}
KEYWORDS: frozenset[str] = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
_MAYBE_JSON = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL"})
_MAYBE_JSON_LIST = frozenset({"COPY", "ADD", "VOLUME"})
_WHITESPACE_LIST = frozenset({"FROM", "EXPOSE"})
_STRING_ARG = frozenset({"USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"})
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})


class _NotStringArray(Exception):
    pass


class _Reason(Exception):
    """A parse failure before its line is known."""


def _is_go_space(ch: str) -> bool:
    return shellwords.is_space(ch)


def _lstrip(text: str) -> str:
    i = 0
    while i < len(text) and _is_go_space(text[i]):
        i += 1
    return text[i:]


def _strip(text: str) -> str:
    text = _lstrip(text)
    j = len(text)
    while j > 0 and _is_go_space(text[j - 1]):
        j -= 1
    return text[:j]


def _is_comment(line: str) -> bool:
    return _lstrip(line.rstrip("\r\n")).startswith("#")


_MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize: Docker refuses longer lines


def _scan_lines(text: str) -> list[str]:
    """The parser's scanLines: split after each \\n, line endings kept (heredoc bodies keep them), no empty last
    line; a line over 64 KiB is refused as Docker's scanner refuses it."""
    if text.startswith(_BOM):
        text = text[1:]
    lines = text.split("\n")
    last = lines.pop()
    out = [line + "\n" for line in lines]
    if last:
        out.append(last)
    for number, line in enumerate(out, 1):
        if len(line) > _MAX_LINE // 4 and len(line.encode("utf-8", "surrogateescape")) > _MAX_LINE:
            raise DockerfileError(number, f"dockerfile line greater than max allowed size of {_MAX_LINE - 1}")
    return out


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.syntax: str | None = None
        self.done = False
        self.seen: set[str] = set()
        self.continuation = _continuation("\\")

    def possible_directive(self, line: str) -> None:
        if self.done:
            return
        match = _DIRECTIVE.match(line)
        if match is None:
            self.done = True
            return
        key = match.group(1).lower()
        if key not in _KNOWN_DIRECTIVES:
            self.done = True  # an unknown directive ends them, as any comment does
            return
        if key in self.seen:
            raise _Reason(f"only one {key} parser directive can be used")
        self.seen.add(key)
        value = match.group(2)
        if key == "escape":
            if value not in ("`", "\\"):
                raise _Reason(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = _continuation(value)
        elif key == "syntax":
            self.syntax = value


def _continuation(escape: str) -> re.Pattern[str]:
    """Docker's line-continuation test: the escape as the last non-blank character, alone on its line or after a
    character that is not the escape itself (so `a \\\\` ends the instruction, and so does `a \\\\\\`: Go has
    no look-behind to count them)."""
    e = re.escape(escape)
    return re.compile(f"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    match = d.continuation.search(line)
    if match is not None:
        return line[:match.start()] + (match.group(1) or ""), False
    return line, True


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """moby's extractBuilderFlags: leading `--name[=value]` words (quotes and backslashes honoured)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if not in_word:
            if pos == n:
                break
            if _is_go_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            in_word = True
        if pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if quote:
            if ch == quote:
                quote = ""
            else:
                if ch == "\\":
                    if pos + 1 == n:
                        pos += 1
                        continue
                    pos += 1
                    ch = line[pos]
                word.append(ch)
            pos += 1
            continue
        if _is_go_space(ch):
            in_word = False
            text = "".join(word)
            if text == "--":
                return line[pos:], words
            if blank_ok or text:
                words.append(text)
            word = []
            blank_ok = False
            pos += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _parse_flags(keyword: str, words: list[str]) -> tuple[tuple[str, str], ...]:
    known = _FLAGS.get(keyword, {})
    out: list[tuple[str, str]] = []
    used: set[str] = set()
    for arg in words:
        if not arg.startswith("--"):
            raise _Reason(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, sep, value = arg[2:].partition("=")
        kind = known.get(name)
        if kind is None:
            raise _Reason(f"Unknown flag: {name}")
        if name in used and kind != _STRINGS:
            raise _Reason(f"Duplicate flag specified: {name}")
        used.add(name)
        if kind == _BOOL:
            if sep and value == "":
                raise _Reason(f"Missing a value on flag: {name}")
            lower = value.lower()
            if lower not in ("", "true", "false"):
                raise _Reason(f"Expecting boolean value for flag {name}, not: {value}")
            out.append((name, lower or "true"))
        else:
            if not sep:
                raise _Reason(f"Missing a value on flag: {name}")
            out.append((name, value))
    return tuple(out)


def _parse_json(rest: str) -> list[str]:
    """Docker's parseJSON: raises _NotStringArray, or ValueError when the text is not a JSON array."""
    rest = _lstrip(rest)
    if not rest.startswith("["):
        raise ValueError("not a JSON array")

    def refuse(name: str) -> object:
        raise ValueError(f"invalid JSON constant {name}")

    value, _ = json.JSONDecoder(parse_constant=refuse).raw_decode(rest)
    if not isinstance(value, list):
        raise ValueError("not a JSON array")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _NotStringArray()
        out.append(item)
    return out


_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


def _maybe_json(rest: str) -> tuple[tuple[str, ...], bool]:
    if rest == "":
        return (), False
    try:
        return tuple(_parse_json(rest)), True
    except _NotStringArray:
        raise _Reason(_NOT_STRING_ARRAY) from None
    except ValueError:
        return (rest,), False


def _maybe_json_list(rest: str) -> tuple[tuple[str, ...], bool]:
    try:
        return tuple(_parse_json(rest)), True
    except _NotStringArray:
        raise _Reason(_NOT_STRING_ARRAY) from None
    except ValueError:
        return tuple(shellwords.split_fields(rest)), False


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = shellwords._split_whitespace(_strip(line), 2)  # noqa: SLF001 -- the parser's own splitter
    cmd = parts[0]
    if len(parts) < 2:
        return cmd, [], ""
    rest, flags = _extract_flags(parts[1])
    return cmd, flags, _strip(rest)


def _node_args(keyword: str, rest: str, d: _Directives) -> tuple[tuple[str, ...], bool]:
    """The parser's per-keyword split of the text after the flags (moby's dispatch table)."""
    if keyword in _MAYBE_JSON:
        return _maybe_json(rest)
    if keyword in _MAYBE_JSON_LIST:
        return _maybe_json_list(rest)
    if keyword in _WHITESPACE_LIST:
        return tuple(shellwords.split_fields(rest)), False
    if keyword in _STRING_ARG:
        return ((rest,) if rest else ()), False
    if keyword in ("ENV", "LABEL"):
        try:
            pairs = shellwords.parse_key_values(rest, keyword, d.escape)
        except InvalidArgument as exc:
            raise _Reason(str(exc)) from None
        return tuple(x for pair in pairs for x in pair), False
    if keyword == "ARG":
        return tuple(shellwords.parse_words(rest, d.escape)), False
    if keyword == "HEALTHCHECK":
        sep = 0
        while sep < len(rest) and not _is_go_space(rest[sep]):
            sep += 1
        if sep == 0:
            return (), False
        nxt = sep
        while nxt < len(rest) and _is_go_space(rest[nxt]):
            nxt += 1
        command, is_json = _maybe_json(rest[nxt:])
        return (rest[:sep], *command), is_json
    return ((rest,) if rest else ()), False


def _parse_heredoc(word: str) -> Heredoc | None:
    match = _HEREDOC.match(word)
    if match is None or match.group(3) == "":
        return None
    rest = match.group(3)
    try:
        words = shellwords.delimiter_words(rest, raw_quotes=False)
        if len(words) != 1:
            return None
        raw = shellwords.delimiter_words(rest, raw_quotes=True)
    except InvalidArgument as exc:
        raise _Reason(str(exc)) from None
    if len(raw) != len(words):
        raise _Reason(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=name, content="", expand=quotes == raw_quotes, chomp=match.group(2) == "-",
                   fd=int(match.group(1) or "0"))


@dataclass
class _Node:
    keyword: str
    args: tuple[str, ...]
    json_form: bool
    flag_words: list[str]
    original: str
    trigger: _Node | None = None


def _new_node(line: str, d: _Directives) -> _Node:
    cmd, flag_words, rest = _split_command(line)
    keyword = cmd.upper()
    if keyword == "ONBUILD":
        trigger = _new_node(rest, d) if rest else None
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", line, count=1)
        return _Node(keyword, (expression,) if rest else (), False, flag_words, _strip(line), trigger)
    args, is_json = _node_args(keyword, rest, d)
    return _Node(keyword, args, is_json, flag_words, _strip(line))


def _at_least_one(keyword: str) -> _Reason:
    return _Reason(f"{keyword} requires at least one argument")


def _exactly_one(keyword: str) -> _Reason:
    return _Reason(f"{keyword} requires exactly one argument")


_GO_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                      "m": 60_000_000_000, "h": 3_600_000_000_000}
_GO_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "1.5h", "300ms", "0")."""
    err = InvalidArgument(f"time: invalid duration {go_quote(text)}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if rest == "":
        raise err
    total = 0
    while rest:
        match = _GO_DURATION_PART.match(rest)
        if match is None:
            raise err
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if (whole == "" and not frac) or unit not in _GO_DURATION_UNITS:
            if unit == "" or unit not in _GO_DURATION_UNITS:
                raise InvalidArgument(
                    f"time: {'missing' if unit == '' else 'unknown'} unit {go_quote(unit) + ' ' if unit else ''}"
                    f"in duration {go_quote(text)}") if (whole or frac) else err
            raise err
        scale = _GO_DURATION_UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        rest = rest[match.end():]
    if total > 2**63 - 1:
        raise err
    return -total if negative else total


def _interval(flags: tuple[tuple[str, str], ...], name: str) -> int:
    value = dict(flags).get(name, "")
    if value == "":
        return 0
    try:
        nanos = parse_go_duration(value)
    except InvalidArgument as exc:
        raise _Reason(str(exc)) from None
    if nanos == 0:
        return 0
    if nanos < 1_000_000:
        raise _Reason(f"Interval {go_quote(name)} cannot be less than 1ms")
    return nanos


def _healthcheck(args: tuple[str, ...], json_form: bool, flags: tuple[tuple[str, str], ...]) -> Healthcheck:
    if not args:
        raise _at_least_one("HEALTHCHECK")
    kind = args[0].upper()
    rest = args[1:]
    if kind == "NONE":
        if rest:
            raise _Reason("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=("NONE",))
    if kind != "CMD":
        raise _Reason(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if not rest:
        raise _Reason("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *rest) if json_form else ("CMD-SHELL", *rest)
    retries = 0
    raw_retries = dict(flags).get("retries", "")
    if raw_retries != "":
        if not re.fullmatch(r"[+-]?[0-9]+", raw_retries):
            raise _Reason(f"strconv.ParseInt: parsing {go_quote(raw_retries)}: invalid syntax")
        retries = int(raw_retries)
        if not -(2**31) <= retries < 2**31:
            raise _Reason(f"strconv.ParseInt: parsing {go_quote(raw_retries)}: value out of range")
        if retries < 1:
            raise _Reason(f"--retries must be at least 1 (not {retries})")
    return Healthcheck(test=test, interval_ns=_interval(flags, "interval"), timeout_ns=_interval(flags, "timeout"),
                       start_period_ns=_interval(flags, "start-period"), retries=retries)


def healthcheck(instruction: Instruction) -> Healthcheck:
    """The HealthConfig a HEALTHCHECK instruction sets (it was validated when parsed)."""
    if instruction.keyword != "HEALTHCHECK":
        raise InvalidArgument(f"{instruction.keyword} is not a HEALTHCHECK instruction")
    try:
        return _healthcheck(instruction.args, instruction.json_form, instruction.flags)
    except _Reason as exc:
        raise DockerfileError(instruction.line, str(exc)) from None


def _validate(node: _Node, flags: tuple[tuple[str, str], ...]) -> None:
    """Docker's per-instruction checks (moby/buildkit instructions.ParseInstruction)."""
    keyword, args = node.keyword, node.args
    if keyword in ("ENV", "LABEL"):
        if not args:
            raise _at_least_one(keyword)
        if any(key == "" for key in args[0::2]):
            raise _Reason(f"{keyword} names can not be blank")
    elif keyword == "ARG":
        if not args:
            raise _at_least_one("ARG")
        if any(arg.partition("=")[0] == "" for arg in args if "=" in arg):
            raise _Reason("ARG names can not be blank")
    elif keyword in ("MAINTAINER", "USER", "WORKDIR", "STOPSIGNAL"):
        if len(args) != 1:
            raise _exactly_one(keyword)
    elif keyword in ("COPY", "ADD"):
        if len(args) < 2:
            raise _Reason(f"{keyword} requires at least two arguments, but only one was provided. "
                          "Destination could not be determined")
    elif keyword == "EXPOSE":
        if not args:
            raise _at_least_one("EXPOSE")
    elif keyword == "VOLUME":
        if not args:
            raise _at_least_one("VOLUME")
        if any(_strip(v) == "" for v in args):
            raise _Reason("VOLUME specified can not be an empty string")
    elif keyword == "SHELL":
        if not args:
            raise _at_least_one("SHELL")
        if not node.json_form:
            raise _Reason("SHELL requires the arguments to be in JSON form")
    elif keyword == "HEALTHCHECK":
        _healthcheck(args, node.json_form, flags)
    elif keyword == "FROM":
        if len(args) == 3 and args[1].lower() == "as":
            if not _STAGE_NAME.match(args[2].lower()):
                raise _Reason(f"invalid name for build stage: {go_quote(args[2])}, "
                              "name can't start with a number or contain symbols")
        elif len(args) != 1:
            raise _Reason("FROM requires either one or three arguments")
    elif keyword == "ONBUILD":
        if node.trigger is None:
            raise _at_least_one("ONBUILD")
        inner = node.trigger.keyword
        if inner == "ONBUILD":
            raise _Reason("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if inner in ("MAINTAINER", "FROM"):
            raise _Reason(f"{inner} isn't allowed as an ONBUILD trigger")


def _instruction(node: _Node, heredocs: tuple[Heredoc, ...], line: int, end_line: int) -> Instruction:
    if node.keyword not in KEYWORDS:
        raise _Reason(f"unknown instruction: {node.keyword}")
    # HEALTHCHECK NONE never looks at its flags in Docker.
    if node.keyword == "HEALTHCHECK" and node.args[:1] and node.args[0].upper() == "NONE":
        flags = tuple((w[2:].partition("=")[0], w[2:].partition("=")[2]) for w in node.flag_words)
    else:
        flags = _parse_flags(node.keyword, node.flag_words)
    trigger = None
    if node.keyword == "ONBUILD" and node.trigger is not None:
        if node.trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            _validate(node, flags)
        trigger = _instruction(node.trigger, (), line, end_line)
    _validate(node, flags)
    return Instruction(keyword=node.keyword, args=node.args, json_form=node.json_form, flags=flags,
                       heredocs=heredocs, line=line, original=node.original, end_line=end_line,
                       trigger=trigger)


def _read_heredocs(node: _Node, lines: list[str], index: int, line_no: int,
                   start_line: int) -> tuple[tuple[Heredoc, ...], int, int]:
    """Reads the bodies of the heredocs a RUN/COPY/ADD line opens; returns them and the new position."""
    if node.keyword not in _HEREDOC_KEYWORDS or node.json_form:
        return (), index, line_no
    found: list[Heredoc] = []
    for word in shellwords.heredoc_line_words(node.original):
        try:
            doc = _parse_heredoc(word)
        except _Reason as exc:
            raise DockerfileError(start_line, str(exc)) from None
        if doc is None:
            continue
        body: list[str] = []
        terminated = False
        while index < len(lines):
            raw = lines[index]
            index += 1
            line_no += 1
            candidate = raw.rstrip("\r\n")
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                terminated = True
                break
            body.append(raw)
        if not terminated:
            raise DockerfileError(start_line, "unterminated heredoc")
        found.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
    return tuple(found), index, line_no


def _instructions(text: str) -> tuple[_Directives, list[Instruction], list[str]]:
    d = _Directives()
    lines = _scan_lines(text)
    out: list[Instruction] = []
    warnings: list[str] = []
    index = 0
    line_no = 0
    while index < len(lines):
        raw = lines[index]
        index += 1
        token = _lstrip(raw.rstrip("\r\n"))
        try:
            d.possible_directive(token)
        except _Reason as exc:
            raise DockerfileError(line_no + 1, str(exc)) from None
        line_no += 1
        start_line = line_no
        line, done = _trim_continuation("" if _is_comment(token) else token, d)
        if done and line == "":
            continue
        empty_continuation = False
        while not done and index < len(lines):
            raw = lines[index]
            index += 1
            token = raw.rstrip("\r\n")
            d.possible_directive(token)
            line_no += 1
            if _is_comment(raw):
                continue
            if _lstrip(token) == "":
                empty_continuation = True
                continue
            more, done = _trim_continuation(token, d)
            line += more
        if empty_continuation:
            warnings.append(f"[WARNING]: Empty continuation line found in:\n    {line}")
        try:
            node = _new_node(line, d)
        except _Reason as exc:
            raise DockerfileError(start_line, str(exc)) from None
        heredocs, index, line_no = _read_heredocs(node, lines, index, line_no, start_line)
        try:
            out.append(_instruction(node, heredocs, start_line, line_no))
        except _Reason as exc:
            raise DockerfileError(start_line, str(exc)) from None
    if warnings:
        warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    return d, out, warnings


def parse(text: str) -> Dockerfile:
    """Parses a Dockerfile; raises DockerfileError with the line of the first problem."""
    d, instructions, warnings = _instructions(text)
    if not instructions:
        raise DockerfileError(None, "failed to parse Dockerfile: file with no instructions")
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    names: set[str] = set()

    def close() -> None:
        if stages:
            last = stages[-1]
            stages[-1] = Stage(last.index, last.name, last.base, last.platform, tuple(current), last.line,
                               last.from_instruction)

    for instr in instructions:
        if instr.keyword == "FROM":
            close()
            current = []
            name = instr.args[2].lower() if len(instr.args) == 3 else None
            if name is not None:
                if name in names:
                    raise DockerfileError(instr.line, f"duplicate stage name {go_quote(name)}")
                names.add(name)
            stages.append(Stage(len(stages), name, instr.args[0], instr.flag("platform"), (), instr.line, instr))
        elif not stages:
            if instr.keyword == "ARG":
                global_args.append(instr)
            else:
                raise DockerfileError(instr.line, "no build stage in current context")
        else:
            current.append(instr)
    close()
    if not stages:
        raise DockerfileError(None, "no build stage in current context")
    return Dockerfile(escape=d.escape, syntax=d.syntax, global_args=tuple(global_args), stages=tuple(stages),
                      warnings=tuple(warnings))
