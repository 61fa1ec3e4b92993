""".dockerignore: Docker's pattern rules (moby/patternmatcher + the docker CLI's ignorefile reader). Pure, stdlib only.

Public API (stable; additions only):

    parse_dockerignore(text: str) -> list[Pattern]
        Lines starting with '#' are comments; each line is trimmed; a leading '!' makes an exception; the rest is
        cleaned like Go's filepath.Clean and a leading '/' dropped. Raises InvalidArgument on a bad pattern
        ("syntax error in pattern", a lone "!").
    Pattern.parse(text: str) -> Pattern                      one pattern as the matcher takes it ("!x" = exception)
    class Matcher(patterns: Iterable[Pattern])
        .excluded(path: str, is_dir: bool = False) -> bool   path relative to the context root with '/' separators.
            A pattern matching the path or one of its parent directories counts; the last pattern that applies
            wins. Judged as the docker CLI's walk judges it (patternmatcher's MatchesUsingParentResults, applied
            from the top directory down).
        .match(path, parent_info=()) -> (bool, parent_info)  one step of that walk: pass the info returned for a
            directory when matching its entries
        .must_walk(dir_path: str) -> bool                    an excluded directory still has to be walked because
            an exception pattern names something under it (Docker's literal prefix test: `!dir/keep` makes the
            walk enter `dir`, `!**/keep` does not).
        .with_patterns(*more: Pattern) -> Matcher            a matcher with more patterns appended
        .has_exclusions: bool
    go_match(pattern: str, name: str) -> bool                Go's path/filepath.Match ('*', '?', '[...]', '\\\\');
        raises InvalidArgument("syntax error in pattern") on a malformed pattern. COPY's wildcards use it.
    go_clean(path: str) -> str                               Go's filepath.Clean
    read_dockerignore(directory) -> Matcher | None           the context's .dockerignore, None when absent

Pattern syntax (Docker's, not gitignore's): '*' any run of non-'/' characters, '?' one non-'/' character,
'**' any number of directories (also none), '[a-z]' classes, '\\\\' escapes; '.+()|{}$' are literal. Plain names
compare as strings, 'x/**' as a prefix, '**/x' as a suffix (so '**foo' also matches 'xfoo', as in Docker).

May import: berth.errors only.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from berth.errors import InvalidArgument

_BAD_PATTERN = "syntax error in pattern"


def go_clean(path: str) -> str:
    """Go's filepath.Clean on '/'-separated paths."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def go_dir(path: str) -> str:
    """Go's filepath.Dir."""
    return go_clean(path[: path.rfind("/") + 1])


# --- Go's path/filepath.Match -----------------------------------------------------------------------------------

def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    if chunk == "" or chunk[0] in "-]":
        raise InvalidArgument(_BAD_PATTERN)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if chunk == "":
            raise InvalidArgument(_BAD_PATTERN)
    r, rest = chunk[0], chunk[1:]
    if rest == "":
        raise InvalidArgument(_BAD_PATTERN)
    return r, rest


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    failed = False
    while chunk:
        if not failed and s == "":
            failed = True
        head = chunk[0]
        if head == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = False
            if chunk.startswith("^"):
                negated = True
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if not failed and lo <= r <= hi:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if chunk == "":
                    raise InvalidArgument(_BAD_PATTERN)
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match on '/'-separated names."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (rest == "" or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    found = True
                    break
                i += 1
            if found:
                continue
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return name == ""


# --- patterns ---------------------------------------------------------------------------------------------------

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"
_ESCAPED = frozenset(".+()|{}$")


def _translate(pattern: str) -> tuple[str, str]:
    """moby/patternmatcher's compile: (match kind, regular expression). Plain names compare as strings, 'x/**'
    as a prefix and '**/x' as a suffix; everything else becomes a regular expression."""
    out = ["^"]
    kind = _EXACT
    i = 0
    n = len(pattern)
    index = 0
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i == n:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        out.append(".*")
                        kind = _REGEXP
                else:
                    out.append("(.*/)?")
                    kind = _REGEXP
                if index == 0:
                    kind = _SUFFIX
            else:
                out.append("[^/]*")
                kind = _REGEXP
        elif ch == "?":
            out.append("[^/]")
            kind = _REGEXP
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + pattern[i])
                i += 1
                kind = _REGEXP
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = _REGEXP
        else:
            out.append(ch)
        index += 1
    out.append(r"\Z")
    return kind, "".join(out)


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str            # cleaned, without the leading '!'
    exclusion: bool      # a '!' exception: re-includes what it matches
    kind: str            # how Docker compares: exact, prefix, suffix or regexp
    regex: re.Pattern[str] | None

    @classmethod
    def parse(cls, raw: str) -> Pattern:
        text = go_clean(raw.strip())
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise InvalidArgument('illegal exclusion pattern: "!"')
            text = text[1:]
        go_match(text, ".")  # the syntax check Docker makes
        kind, source = _translate(text)
        regex = None
        if kind == _REGEXP:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    regex = re.compile(source)
            except re.error as exc:
                raise InvalidArgument(f"{_BAD_PATTERN}: {raw!r} ({exc})") from exc
        return cls(text, exclusion, kind, regex)

    def matches(self, path: str) -> bool:
        if self.kind == _EXACT:
            return path == self.text
        if self.kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.search(path) is not None

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


def parse_dockerignore(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore file, as the docker CLI reads them."""
    patterns: list[Pattern] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if pattern == "":
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        if invert:
            pattern = "!" + pattern
        patterns.append(Pattern.parse(pattern))
    return patterns


ParentInfo = tuple[bool, ...]


class Matcher:
    """Decides which context paths a list of patterns leaves out."""

    __slots__ = ("patterns", "has_exclusions")

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = tuple(patterns)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str, is_dir: bool = False) -> bool:  # noqa: ARG002 -- Docker's rules ignore the kind
        """Whether the context walk leaves path out (judged with its parents' results, as the walk does)."""
        info: ParentInfo = ()
        parts = go_clean(path).split("/")
        result = False
        for i in range(len(parts)):
            result, info = self.match(("/".join(parts[: i + 1])), info)
        return result

    def match(self, path: str, parent: ParentInfo = ()) -> tuple[bool, ParentInfo]:
        """moby/patternmatcher's MatchesUsingParentResults: (excluded, the info to pass for path's children).

        parent is what match() returned for path's directory; () at the top (or when unknown: then the path's
        parent directories are tested against each pattern instead)."""
        matched = False
        record: list[bool] = []
        for index, pattern in enumerate(self.patterns):
            hit = bool(parent) and parent[index]
            if not hit:
                if pattern.exclusion != matched:
                    record.append(False)
                    continue
                hit = pattern.matches(path)
                if not hit and not parent:
                    parent_dir = go_dir(path)
                    if parent_dir != ".":
                        dirs = parent_dir.split("/")
                        hit = any(pattern.matches("/".join(dirs[: i + 1])) for i in range(len(dirs)))
            record.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(record)

    def must_walk(self, dir_path: str) -> bool:
        prefix = dir_path + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def with_patterns(self, *more: Pattern) -> Matcher:
        return Matcher((*self.patterns, *more))

    def __repr__(self) -> str:
        return f"Matcher({[str(p) for p in self.patterns]!r})"


def read_dockerignore(directory: str | os.PathLike[str]) -> Matcher | None:
    """The .dockerignore of a context directory, or None when it has none."""
    path = Path(directory) / ".dockerignore"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from exc
    return Matcher(parse_dockerignore(data.decode("utf-8", "surrogateescape")))
