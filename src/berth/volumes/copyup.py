"""Copy-up: an empty volume mounted over a directory of the image is first filled with that directory's content,
as Docker does (files, directories, symlinks, device nodes and fifos, hard links, modes, owners, times and
extended attributes; the volume's own root takes the directory's owner and mode).

Everything is read through file descriptors: the source is opened inside the container's root filesystem with
openat2(RESOLVE_IN_ROOT), so a symlink in the image resolves inside that root and never out of it, and every
entry below is opened with O_NOFOLLOW relative to its parent's fd. The volume may be mounted in a running container
meanwhile (an empty volume is filled whoever else uses it), so the writing side never follows a path either: new
entries are made relative to their directory's fd, attributes are set through an fd of the entry itself, and a
hard link's first copy is found with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS.

May import: berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from berth.errors import RuntimeFailure
from berth.util import linux

_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_empty(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def copy_up(rootfs: Path, destination: str, volume_dir: Path) -> bool:
    """Fill volume_dir from `destination` inside rootfs when volume_dir is empty and destination is a directory
    there. Returns whether anything was copied."""
    if not is_empty(volume_dir):
        return False
    root_fd = os.open(rootfs, _DIR)
    try:
        try:
            src = linux.openat2(root_fd, destination.strip("/") or ".", _DIR, _IN_ROOT)
        except (FileNotFoundError, NotADirectoryError):
            return False
    finally:
        os.close(root_fd)
    try:
        dst = os.open(volume_dir, _DIR)
        try:
            st = os.fstat(src)
            _copy_dir(src, dst, dst, "", {})
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
        finally:
            os.close(dst)
    except OSError as exc:
        raise RuntimeFailure(f"copying the image's {destination} into volume {volume_dir.parent.name}: {exc}") \
            from exc
    finally:
        os.close(src)
    return True


def _copy_dir(src: int, dst: int, top: int, rel: str, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as it:
        names = sorted(e.name for e in it)
    for name in names:
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        path = f"{rel}{name}"
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s = os.open(name, _DIR, dir_fd=src)
            d = os.open(name, _DIR, dir_fd=dst)
            try:
                _copy_dir(s, d, top, path + "/", links)
                _attributes(s, d, st)
            finally:
                os.close(s)
                os.close(d)
            continue
        if st.st_nlink > 1 and not stat.S_ISLNK(mode):
            first = links.get((st.st_dev, st.st_ino))
            if first is not None:
                _link(top, first, dst, name)
                continue
            links[(st.st_dev, st.st_ino)] = path
        if stat.S_ISREG(mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                            dir_fd=dst)
                try:
                    _copy_bytes(s, d, st.st_size)
                    _attributes(s, d, st)
                finally:
                    os.close(d)
            finally:
                os.close(s)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dst)
            node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
            try:
                if stat.S_IFMT(os.fstat(node).st_mode) != stat.S_IFMT(mode):
                    raise OSError(f"{path} was replaced while it was being copied")
                at = f"/proc/self/fd/{node}"   # an O_PATH fd: chown/chmod/utime of the node itself, never a link
                os.chown(at, st.st_uid, st.st_gid)
                os.chmod(at, stat.S_IMODE(mode))
                os.utime(at, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(node)
        # sockets are not content: skipped, as Docker's copy does


def _link(top: int, first: str, dst: int, name: str) -> None:
    """Hard-link the copy already made at `first` (relative to the volume's top fd) as dst/name, the path resolved
    with no symlink anywhere in it, so a swapped directory cannot make it link a file from outside."""
    fd = linux.openat2(top, first, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                       linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_NO_MAGICLINKS)
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dst, follow_symlinks=True)
    finally:
        os.close(fd)


def _copy_bytes(src: int, dst: int, size: int) -> None:
    left = size
    while left > 0:
        try:
            n = os.copy_file_range(src, dst, min(left, 1 << 30))
        except OSError:
            n = os.sendfile(dst, src, None, min(left, 1 << 30))
        if n == 0:
            break
        left -= n


def _attributes(src: int, dst: int, st: os.stat_result) -> None:
    """Owner first (chown clears setuid bits), then mode, extended attributes and times."""
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        for key in os.listxattr(src):
            if key.startswith("trusted.overlay."):
                continue
            with contextlib.suppress(OSError):
                os.setxattr(dst, key, os.getxattr(src, key))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
