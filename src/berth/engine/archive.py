"""`docker cp`: stat, read and write paths inside a container's root filesystem, running or not.

Paths are taken as Docker takes them (moby's container.ResolvePath / StatPath / archive.go): absolute in the
container, cleaned lexically, the directory part resolved with symlinks followed inside the container's root, the
last element not followed (unless the path ends in "/" or "/.") for a stat or a read, and followed for the
destination of a write. Every lookup goes through openat2(RESOLVE_IN_ROOT) from a directory fd of the root, and
every write through berth.snapshots.apply's extractor, so no symlink (`/etc/evil -> /../../host-file`) and no
race can make berthd read or write outside the container.

The root is the container's merged overlay (its bundle/rootfs while it runs, a temporary mount otherwise), as for
Docker; a path inside one of the container's volumes or bind mounts is taken from that mount's source instead,
resolved inside it. tmpfs mounts exist only inside the container and are not reached.
May import: berth.engine, berth.images, berth.runtime, berth.snapshots, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from berth.engine.containers import Container
from berth.engine.fsops import merged_rootfs
from berth.engine.lifecycle import ContainerService
from berth.engine.mounts import MountPoint, MountType
from berth.errors import Forbidden, InvalidArgument, NotFound, RuntimeFailure
from berth.snapshots.apply import CopyOptions, extract_into
from berth.snapshots.diff import write_entry
from berth.snapshots.store import Snapshotter
from berth.util import linux

_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 255


@dataclass(frozen=True, slots=True)
class PathStat:
    name: str
    size: int
    mode: int              # st_mode
    mtime_ns: int
    link_target: str       # "" unless the path is a symlink: then where it leads, resolved inside the container


@dataclass(frozen=True, slots=True)
class PutOptions:
    no_overwrite_dir_non_dir: bool = False
    copy_uid_gid: bool = False


def absolute(path: str) -> str:
    """moby's archive.PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if posixpath.basename(path) == "." and posixpath.basename(cleaned) != ".":
        cleaned = cleaned.rstrip("/") + "/."
    if path.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def go_base(path: str) -> str:
    """Go's filepath.Base: trailing slashes dropped, "/" for the root."""
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def _clean(path: str) -> str:
    return "/" + "/".join(_parts(posixpath.normpath("/" + path)))


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve_in_root(root: int, path: str) -> str:
    """moby's symlink.FollowSymlinkInScope: path with every symlink followed as if root were "/" (missing
    components kept as they are). Each readlink is done from a directory opened inside root."""
    done: list[str] = []
    todo = _parts(path)
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            dfd = linux.openat2(root, "/".join(done) or ".", _DIR, _IN_ROOT)
        except OSError:
            done.append(part)      # a missing or non-directory parent: the rest stays lexical
            continue
        try:
            st = os.stat(part, dir_fd=dfd, follow_symlinks=False)
            target = os.readlink(part, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else None
        except OSError:
            target = None
        finally:
            os.close(dfd)
        if target is None:
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise InvalidArgument(f"too many symlinks in {path!r}")
        if target.startswith("/"):
            done = []
        todo = _parts(target) + todo
    return "/" + "/".join(done)


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


@contextlib.contextmanager
def _opened(root: int, rel: str, path: str, ref: str) -> Iterator[int]:
    try:
        fd = linux.openat2(root, rel or ".", _DIR, _IN_ROOT)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise _not_found(path, ref) from exc
        raise RuntimeFailure(f"opening {path} in container {ref}: {exc.strerror}") from exc
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _root(containers: ContainerService, snapshots: Snapshotter, c: Container) -> Iterator[int]:
    with merged_rootfs(containers, snapshots, c) as rootfs:
        fd = os.open(rootfs, _DIR | os.O_NOFOLLOW)
        try:
            yield fd
        finally:
            os.close(fd)


def _mount_under(c: Container, where: str) -> tuple[MountPoint, str] | None:
    """The volume or bind mount of c holding the container path where (cleaned, symlinks resolved), and where's
    path inside it; None when where is on the root filesystem. tmpfs mounts are the container's alone."""
    best: tuple[MountPoint, str] | None = None
    for m in c.config.mounts:
        dest = _clean(m.destination)
        source = m.host_path if m.type is MountType.VOLUME else m.source if m.type is MountType.BIND else ""
        if not source:
            continue
        inside = where == dest or where.startswith(dest.rstrip("/") + "/")
        if inside and (best is None or len(dest) > len(_clean(best[0].destination))):
            best = (m, "/" + where[len(dest):].lstrip("/"))
    return best


@contextlib.contextmanager
def _view(root: int, c: Container, path: str, ref: str,
          follow_last: bool) -> Iterator[tuple[int, str, MountPoint | None]]:
    """(directory fd to work from, path relative to it, the mount it is in): the container's root, or the volume
    or bind mount that path lies in, as the container sees it."""
    abs_path = absolute(path)
    head, base = posixpath.split(abs_path)
    if follow_last or base in ("", "."):
        where = resolve_in_root(root, abs_path)
    else:
        where = posixpath.join(resolve_in_root(root, head), base)
    found = _mount_under(c, where)
    if found is None:
        yield root, abs_path, None
        return
    m, rest = found
    source = m.host_path if m.type is MountType.VOLUME else m.source
    if not follow_last and base in ("", "."):
        rest = rest.rstrip("/") + "/" + base if base else rest.rstrip("/") + "/"
    if not os.path.isdir(source):
        # a file bound onto the path (-v /host/file:/etc/file): work from its directory, on that one name
        if rest.strip("/"):
            raise _not_found(path, ref)
        source, rest = os.path.split(source.rstrip("/"))
        rest = "/" + rest
    try:
        fd = os.open(source, _DIR | os.O_NOFOLLOW)
    except OSError as exc:
        raise NotFound(f"the source of the mount at {m.destination} is gone: {exc.strerror}") from exc
    try:
        yield fd, rest, m
    finally:
        os.close(fd)


def _locate(root: int, abs_path: str) -> tuple[str, str]:
    """(the directory of abs_path resolved inside root, the last element: "." for the directory itself)."""
    head, base = posixpath.split(abs_path)
    return resolve_in_root(root, head).lstrip("/"), base or "."


def _stat(root: int, inner: str, path: str, ref: str, mount: MountPoint | None) -> tuple[PathStat, str, str]:
    rel_dir, base = _locate(root, inner)
    with _opened(root, rel_dir, path, ref) as dfd:
        try:
            st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise _not_found(path, ref) from exc
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = resolve_in_root(root, inner)
        if mount is not None:
            link = _clean(mount.destination + link)
    name = go_base(absolute(path))
    return PathStat(name, st.st_size, st.st_mode, st.st_mtime_ns, link), rel_dir, base


def stat_path(containers: ContainerService, snapshots: Snapshotter, c: Container, path: str, ref: str) -> PathStat:
    """HEAD /containers/{id}/archive: the stat of path (NotFound in Docker's words when it is missing)."""
    with _root(containers, snapshots, c) as rootfs, _view(rootfs, c, path, ref, False) as (root, inner, mount):
        return _stat(root, inner, path, ref, mount)[0]


def read_archive(containers: ContainerService, snapshots: Snapshotter, c: Container, path: str, ref: str,
                 on_stat: Callable[[PathStat], None], out: BinaryIO) -> None:
    """GET /containers/{id}/archive: on_stat(stat) once the path is found, then a tar of it on out, its entries
    named after the path's last element as Docker names them."""
    with _root(containers, snapshots, c) as rootfs, _view(rootfs, c, path, ref, False) as (root, inner, mount):
        st, rel_dir, base = _stat(root, inner, path, ref, mount)
        on_stat(st)
        with _opened(root, rel_dir, path, ref) as dfd:
            write_entry(dfd, base, st.name, out)


def _owner(c: Container, rootfs: int) -> tuple[int, int]:
    """The container's user, as `docker cp -a` gives every copied file to it."""
    if not c.config.user:
        return 0, 0
    from berth.runtime.users import resolve_user
    try:
        u = resolve_user(f"/proc/self/fd/{rootfs}", c.config.user)
    except NotFound as exc:
        raise InvalidArgument(f"unable to find user {c.config.user}: {exc}") from exc
    return u.uid, u.gid


def write_archive(containers: ContainerService, snapshots: Snapshotter, c: Container, path: str, ref: str,
                  body: BinaryIO, options: PutOptions) -> int:
    """PUT /containers/{id}/archive: extract the (uncompressed) tar body into the directory at path, which must
    exist; returns the number of entries."""
    with _root(containers, snapshots, c) as rootfs, _view(rootfs, c, path, ref, True) as (root, inner, mount):
        if mount is None and c.config.readonly_rootfs:
            raise Forbidden("container rootfs is marked read-only")
        if mount is not None and mount.read_only:
            raise Forbidden("mounted volume is marked read-only")
        dest = resolve_in_root(root, inner)
        try:
            fd = linux.openat2(root, dest.lstrip("/") or ".", os.O_PATH | os.O_CLOEXEC, _IN_ROOT)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise _not_found(path, ref) from exc
            raise RuntimeFailure(f"opening {path} in container {ref}: {exc.strerror}") from exc
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise InvalidArgument("extraction point is not a directory")
        finally:
            os.close(fd)
        owner = _owner(c, rootfs) if options.copy_uid_gid else None
        return extract_into(body, root, tuple(_parts(dest)),
                            CopyOptions(options.no_overwrite_dir_non_dir, owner), label=f"archive for {path}")
