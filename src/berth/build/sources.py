"""COPY/ADD source patterns resolved inside a root (the extracted context, or a stage's or image's filesystem).

A source names something inside the root: a leading '/' means the root itself, `..` may not climb above it
("forbidden path outside the build context"). Symlinks in the middle of a path resolve inside the root, as they
would in a container; the last component is never followed, so a symlink source is copied as a link, and one
pointing out of the context never leads out. Wildcards (`*`, `?`, `[...]`, Go's filepath.Match per path
segment) may match several entries; a pattern matching nothing is an error, as in Docker.

May import: berth.errors.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import stat
from pathlib import Path

from berth.errors import NotFound, UnsafePath

_MAX_LINKS = 40


def _clean(pattern: str, word: str) -> list[str]:
    text = posixpath.normpath("/" + pattern.replace("\\", "/") if not pattern.startswith("/") else pattern)
    raw = [p for p in pattern.split("/") if p not in ("", ".")]
    depth = 0
    for part in raw:
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise UnsafePath(f"forbidden path outside the build context: {pattern} ()")
    return [p for p in text.split("/") if p]


def _resolve_dir(root: Path, parts: list[str]) -> Path | None:
    """The directory named by parts, symlinks resolved inside root; None if it does not exist."""
    stack = list(reversed(parts))
    current: list[str] = []
    links = 0
    while stack:
        part = stack.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        path = root.joinpath(*current, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                return None
            target = os.readlink(path)
            if target.startswith("/"):
                current = []
            stack.extend(reversed([p for p in target.split("/") if p]))
            continue
        if not stat.S_ISDIR(st.st_mode):
            return None
        current.append(part)
    return root.joinpath(*current)


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _match(name: str, pattern: str) -> bool:
    # Go's filepath.Match: '*' and '?' never match '/', which a single segment cannot hold anyway.
    try:
        return re.fullmatch(fnmatch.translate(pattern), name) is not None
    except re.error:
        return False


def resolve_sources(root: Path, pattern: str, word: str = "COPY") -> list[Path]:
    """The host paths a COPY/ADD source names inside root, sorted; raises NotFound or UnsafePath."""
    parts = _clean(pattern, word)
    if not parts:
        return [root]
    candidates = [(root, 0)]
    results: list[Path] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt: list[tuple[Path, int]] = []
        for base, _ in candidates:
            names = sorted(n for n in _listdir(base) if _match(n, part)) if _has_magic(part) else [part]
            for name in names:
                path = base / name
                if not os.path.lexists(path):
                    continue
                if last:
                    results.append(path)
                else:
                    resolved = _resolve_dir(root, [*path.relative_to(root).parts])
                    if resolved is not None:
                        nxt.append((resolved, 0))
        candidates = nxt
    if not results:
        if _has_magic(pattern):
            raise NotFound(f"no source files were specified: {pattern} matches no file in the build context")
        raise NotFound(f"file not found in build context or excluded by .dockerignore: stat {pattern.lstrip('/')}: "
                       f"file does not exist")
    return results


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
