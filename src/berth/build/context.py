"""The build context: what a client sends (a tar of a directory, .dockerignore applied) and safe look-ups in it.

Client side (the CLI's hot path; stdlib only, nothing heavy at import):

    context_tar(directory: Path, dockerfile: str, ignore: Matcher | None, out: BinaryIO,
                extra_files: Sequence[tuple[str, bytes]] = ()) -> None
        Writes the tar the docker CLI sends: entries in filepath.Walk order (each directory's names sorted), names
        relative to the directory ("sub/" for directories), permission bits (plus setuid/setgid/sticky), mtimes
        truncated to seconds, uid/gid 0 and no user/group names (the CLI's ChownOpts 0:0), symlinks stored as
        links and never followed, hard links within the context kept as links, sockets skipped. The ignore
        matcher is applied as the CLI does (directories walked only when an exception pattern may re-include
        something below them); .dockerignore and the Dockerfile (`dockerfile`, a path relative to the
        directory, or "" when it comes from elsewhere) are always included. extra_files replace the content of a
        regular file of that name in place (keeping its header) or are appended as 0600 files (the CLI's
        `.dockerfile.<random>` and rewritten .dockerignore for a Dockerfile from stdin or outside the context).
        The stream ends after the two zero blocks (no record padding, like Go's writer); returns its size.
    context_tar_stream(directory, dockerfile, ignore, extra_files=()) -> Iterator[bytes]
        The same tar as chunks made while the consumer sends them (a request body): nothing is staged on disk.

Builder side (functions over a context tree: an extracted directory, read through os, or any `Tree` such as the
received context's index, whose paths lie under the same root):

    Tree: Protocol of lstat(path) -> os.stat_result, listdir(path) -> list[str], readlink(path) -> str.
    OS_TREE: the host's filesystem as a Tree. Every function below takes `tree=OS_TREE`.
    scoped_path(root: Path, path: str) -> Path
        Docker's FollowSymlinkInScope: `path` (relative, or absolute meaning relative to root) resolved with every
        symlink evaluated as if root were '/': the result is always inside root. Raises UnsafePath when `path`
        itself climbs out of root with '..' ("forbidden path outside the build context").
    resolve_source_entries(context_root: Path, patterns: list[str]) -> list[SourceEntry]
        COPY/ADD sources as the classic builder finds them: a leading '/' and './' dropped; with wildcards
        (Go filepath.Match: '*', '?', '[...]') every path of the context (walked without following links) that
        matches, in walk order; without, the path itself. Each result is scoped_path()'d, so it is inside the
        root and is never a symlink leading out of it. Raises UnsafePath for '..' escapes, NotFound for a missing
        file ("file not found in build context or excluded by .dockerignore: stat x: file does not exist")
        and when nothing at all matches ("no source files were specified"). The builder's one implementation
        of this rule (COPY, ADD and their cache checksums). Each entry keeps the name it had in the context
        (`SourceEntry.name`, relative, '/'-separated) beside its resolved `path`:
        Docker names a copied file after that name, not after a symlink's target.

May import: berth.errors, berth.build.dockerignore.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from berth.build.dockerignore import Matcher, ParentInfo, Pattern, go_clean, go_match
from berth.errors import InvalidArgument, NotFound, UnsafePath

_MAX_LINKS = 255
_CHUNK = 256 * 1024


class Tree(Protocol):
    """A read-only view of a directory tree (paths are the host's; a view may answer for some of them)."""

    def lstat(self, path: str | Path) -> os.stat_result: ...
    def listdir(self, path: str | Path) -> list[str]: ...
    def readlink(self, path: str | Path) -> str: ...


class _OsTree:
    """The host's filesystem."""

    def lstat(self, path: str | Path) -> os.stat_result:
        return os.lstat(path)

    def listdir(self, path: str | Path) -> list[str]:
        return os.listdir(path)

    def readlink(self, path: str | Path) -> str:
        return os.readlink(path)


OS_TREE: Tree = _OsTree()


def _walk(root: str, rel: str = "", tree: Tree = OS_TREE) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under root, in Go's filepath.Walk order (names sorted bytewise)."""
    base = os.path.join(root, rel) if rel else root
    try:
        names = sorted(tree.listdir(base), key=os.fsencode)
    except OSError as exc:
        raise InvalidArgument(f"error checking context: can't read directory {rel or '.'}: {exc.strerror}") from exc
    for name in names:
        child = f"{rel}/{name}" if rel else name
        try:
            st = tree.lstat(os.path.join(root, child))
        except FileNotFoundError:
            continue  # vanished while we walked
        yield child, st


def context_tar(directory: Path, dockerfile: str, ignore: Matcher | None, out: BinaryIO,
                extra_files: Sequence[tuple[str, bytes]] = ()) -> int:
    size = 0
    for chunk in context_tar_stream(directory, dockerfile, ignore, extra_files):
        out.write(chunk)
        size += len(chunk)
    out.flush()
    return size


def context_tar_stream(directory: Path, dockerfile: str, ignore: Matcher | None,
                       extra_files: Sequence[tuple[str, bytes]] = ()) -> Iterator[bytes]:
    """context_tar as chunks produced while they are sent (files are read as the consumer asks)."""
    root = os.fspath(directory)
    if not os.path.isdir(root):
        raise InvalidArgument(f"unable to prepare context: path {str(directory)!r} not found")
    if ignore is not None:
        # The CLI's TrimBuildFilesFromExcludes: the daemon needs these two whatever .dockerignore says.
        if ignore.excluded(".dockerignore"):
            ignore = ignore.with_patterns(Pattern.parse("!.dockerignore"))
        name = go_clean(dockerfile) if dockerfile else ""
        if name and ignore.excluded(name):
            ignore = ignore.with_patterns(Pattern.parse("!" + name))
    return _stream(root, ignore, extra_files)


def _stream(root: str, ignore: Matcher | None, extra_files: Sequence[tuple[str, bytes]]) -> Iterator[bytes]:
    writer = _Writer(dict(extra_files))
    yield from _add_tree(writer, root, "", ignore)
    now = int(time.time())
    for name, data in extra_files:
        if name in writer.replace:
            info = tarfile.TarInfo(name)
            info.mode = 0o600
            info.mtime = now
            yield from writer.add_bytes(info, data)
    yield tarfile.NUL * (tarfile.BLOCKSIZE * 2)


class _Writer:
    """Tar entries as Go's archive/tar writes them for the CLI: USTAR headers when the entry fits (a long name
    split into prefix and name), PAX records only when it does not (non-ASCII or over-long names, big numbers);
    the stream ends with the two zero blocks, without tarfile's record padding (the CLI prints the context's byte
    count, so the size is part of its output)."""

    def __init__(self, replace: dict[str, bytes]) -> None:
        self.seen: dict[tuple[int, int], str] = {}
        self.replace = replace  # entries whose content the caller swaps (the CLI's .dockerignore rewrite)

    def add(self, info: tarfile.TarInfo, f: BinaryIO | None = None) -> Iterator[bytes]:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        header = None
        if info.name.isascii() and info.linkname.isascii():
            try:
                header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
            except ValueError:
                header = None
        if header is None:
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        yield header
        if f is not None and info.size:
            left = info.size
            while left:
                chunk = f.read(min(left, _CHUNK))
                if not chunk:
                    raise InvalidArgument(f"error checking context: {info.name!r} shrank while being read")
                yield chunk
                left -= len(chunk)
            rest = info.size % tarfile.BLOCKSIZE
            if rest:
                yield tarfile.NUL * (tarfile.BLOCKSIZE - rest)

    def add_bytes(self, info: tarfile.TarInfo, data: bytes) -> Iterator[bytes]:
        self.replace.pop(info.name, None)
        info.type = tarfile.REGTYPE
        info.size = len(data)
        return self.add(info, io.BytesIO(data))


def _add_tree(writer: _Writer, root: str, rel: str, ignore: Matcher | None,
              parent: ParentInfo = ()) -> Iterator[bytes]:
    for child, st in _walk(root, rel):
        is_dir = stat.S_ISDIR(st.st_mode)
        info: ParentInfo = ()
        if ignore is not None:
            skip, info = ignore.match(child, parent)
            if skip:
                if is_dir and ignore.has_exclusions and ignore.must_walk(child):
                    yield from _add_tree(writer, root, child, ignore, info)
                continue
        yield from _add_entry(writer, os.path.join(root, child), child, st)
        if is_dir:
            yield from _add_tree(writer, root, child, ignore, info)


def _add_entry(writer: _Writer, full: str, name: str, st: os.stat_result) -> Iterator[bytes]:
    mode = st.st_mode
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(mode)
    info.mtime = int(st.st_mtime)
    if stat.S_ISREG(mode):
        if name in writer.replace:
            yield from writer.add_bytes(info, writer.replace[name])
            return
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in writer.seen:
            info.type = tarfile.LNKTYPE
            info.linkname = writer.seen[key]
            yield from writer.add(info)
            return
        if st.st_nlink > 1:
            writer.seen[key] = name
        info.size = st.st_size
        try:
            f = open(full, "rb")  # noqa: SIM115 -- closed below, after the generator sent its chunks
        except OSError as exc:
            raise InvalidArgument(f"error checking context: can't read {name!r}: {exc.strerror}") from exc
        with f:
            yield from writer.add(info, f)
        return
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return  # sockets: the CLI cannot archive them either and leaves them out
    yield from writer.add(info)


# --- builder side -------------------------------------------------------------------------------------------------

def scoped_path(root: Path, path: str, tree: Tree = OS_TREE) -> Path:
    """Resolves path inside root, evaluating symlinks as if root were '/' (Docker's FollowSymlinkInScope)."""
    base = go_clean(os.fspath(root))
    joined = go_clean(base + "/" + path)
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise UnsafePath(f"forbidden path outside the build context: {path} ({joined})")
    rest = go_clean("/" + joined[len(base):])
    done: list[str] = []
    links = 0
    pending = [p for p in rest.split("/") if p]
    pending.reverse()
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = base.rstrip("/") + "/" + "/".join([*done, part])
        try:
            st = tree.lstat(candidate)
        except FileNotFoundError:
            done.append(part)
            continue
        except NotADirectoryError:
            done.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise UnsafePath(f"too many links in {path}")
        target = tree.readlink(candidate)
        if target.startswith("/"):
            done = []
        more = [p for p in target.split("/") if p]
        more.reverse()
        pending.extend(more)
    return Path(base.rstrip("/") + "/" + "/".join(done)) if done else Path(base)


def contains_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 1
        elif ch in "*?[":
            return True
        i += 1
    return False


@dataclass(frozen=True, slots=True)
class SourceEntry:
    name: str    # as named in the context, relative
    path: Path   # resolved inside the context root


def _strip_source(pattern: str) -> str:
    if pattern.startswith("/"):
        pattern = pattern[1:]
    if pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern


def _entry(root: Path, name: str, tree: Tree) -> SourceEntry:
    full = scoped_path(root, name, tree)
    try:
        st = tree.lstat(full)
    except OSError:
        st = None
    if st is None or stat.S_ISLNK(st.st_mode):   # scoped_path resolved every link: one left here dangles
        raise NotFound(f"file not found in build context or excluded by .dockerignore: stat {name}: "
                       "file does not exist")
    return SourceEntry(name, full)


def _walk_all(root: str, rel: str = "", tree: Tree = OS_TREE) -> Iterator[tuple[str, bool]]:
    for child, st in _walk(root, rel, tree):
        is_dir = stat.S_ISDIR(st.st_mode)
        yield child, is_dir
        if is_dir:
            yield from _walk_all(root, child, tree)


def resolve_source_entries(context_root: Path, patterns: list[str], tree: Tree = OS_TREE) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    for raw in patterns:
        pattern = _strip_source(raw)
        if contains_wildcards(pattern):
            for rel, _ in _walk_all(os.fspath(context_root), tree=tree):
                if go_match(pattern, rel):
                    entries.append(_entry(context_root, rel, tree))
        else:
            entries.append(_entry(context_root, pattern, tree))
    if not entries:
        raise NotFound("no source files were specified")
    return entries
