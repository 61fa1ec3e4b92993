"""Directories back into layer tar streams: a container's changes, or a whole rootfs.

`write_diff` turns an overlayfs upper directory into a layer: whiteouts (char device 0:0)
become `.wh.<name>` entries and opaque directories (xattr trusted.overlay.opaque=y) get a
`.wh..wh..opq` entry. `write_tree` writes any directory tree as a layer (e.g. a busybox rootfs
for the offline base image), optionally clamping mtimes so the same tree gives the same digest.

Both write plain PAX tar in a deterministic order (names sorted bytewise, each directory before
its contents), owner names left empty, mtimes in whole seconds, hardlinks detected by inode
(the first path seen carries the data), xattrs as SCHILY.xattr.* records except overlayfs'
own trusted.overlay.*. Sockets are skipped, as Docker does. The diff relies on overlayfs
mounted without redirect_dir and metacopy (berth.snapshots.mount turns both off). The walk goes
through directory fds and never follows a symlink, so it is safe on a running container's upper dir.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from berth.oci.digest import Digest
from berth.snapshots.apply import OPAQUE, OPAQUE_XATTR, WHITEOUT

_XATTR_PAX = "SCHILY.xattr."
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class LayerWritten:
    diff_id: Digest          # sha256 of the tar stream written
    size: int
    entries: int


def write_diff(upper: Path, out: BinaryIO) -> LayerWritten:
    """The changes recorded in an overlayfs upper directory, as a layer tar stream."""
    return _write(upper, out, overlay=True, clamp_mtime=None)


def write_tree(root: Path, out: BinaryIO, *, clamp_mtime: int | None = None) -> LayerWritten:
    """Every entry under root (root itself excluded), as a layer tar stream.

    clamp_mtime: no entry gets an mtime later than this (seconds since the epoch), as with
    SOURCE_DATE_EPOCH, so that rebuilding from the same files gives the same diff_id.
    """
    return _write(root, out, overlay=False, clamp_mtime=clamp_mtime)


def write_entry(parent_fd: int, base: str, name: str, out: BinaryIO) -> LayerWritten:
    """One entry of the directory parent_fd, never followed if a symlink, as a tar stream (`docker cp` out of a
    container): its own header named `name`, then, for a directory, everything under it as `name/...`.
    base "." is the directory parent_fd itself."""
    sink = _HashingWriter(out)
    tar = tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                          encoding="utf-8", errors="surrogateescape")
    writer = _TreeWriter(tar, False, None)
    try:
        st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        writer._add(parent_fd, base, name, st)
        if stat.S_ISDIR(st.st_mode):
            writer.walk_fd(os.open(base, _DIR | os.O_NOFOLLOW, dir_fd=parent_fd), name.rstrip("/") or name)
    finally:
        tar.close()
    return LayerWritten(Digest("sha256", sink.hash.hexdigest()), sink.size, writer.entries)


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def tell(self) -> int:
        return self.size

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)


def _write(top: Path, out: BinaryIO, overlay: bool, clamp_mtime: int | None) -> LayerWritten:
    sink = _HashingWriter(out)
    tar = tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                          encoding="utf-8", errors="surrogateescape")
    writer = _TreeWriter(tar, overlay, clamp_mtime)
    try:
        writer.walk(top)
    finally:
        tar.close()            # writes the two end-of-archive blocks and the record padding
    return LayerWritten(Digest("sha256", sink.hash.hexdigest()), sink.size, writer.entries)


class _TreeWriter:
    def __init__(self, tar: tarfile.TarFile, overlay: bool, clamp_mtime: int | None) -> None:
        self._tar, self._overlay, self._clamp = tar, overlay, clamp_mtime
        self._links: dict[tuple[int, int], str] = {}
        self.entries = 0

    def walk(self, top: Path) -> None:
        """Depth first, names sorted bytewise, each directory right before its contents.

        Every lookup is relative to an open directory fd and never follows a symlink, so a
        running container that swaps a directory for a symlink cannot make us read host files.
        An explicit stack keeps deep trees off Python's recursion limit; it holds one fd per level.
        """
        self.walk_fd(os.open(top, _DIR | os.O_NOFOLLOW), "")

    def walk_fd(self, top_fd: int, prefix: str) -> None:
        """walk() from an open directory fd (closed here), entry names starting with prefix."""
        stack: list[tuple[int, str, Iterator[str]]] = []
        try:
            self._enter(stack, top_fd, prefix)
            while stack:
                dfd, rel, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(dfd)
                    stack.pop()
                    continue
                name_rel = f"{rel.rstrip('/')}/{name}" if rel else name   # rel "/": a container's whole root
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if self._overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    self._add_empty(f"{rel}/{WHITEOUT}{name}" if rel else f"{WHITEOUT}{name}", st)
                    continue
                self._add(dfd, name, name_rel, st)
                if stat.S_ISDIR(st.st_mode):
                    self._enter(stack, os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=dfd), name_rel)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)

    def _enter(self, stack: list[tuple[int, str, Iterator[str]]], dfd: int, rel: str) -> None:
        stack.append((dfd, rel, iter(sorted(os.listdir(dfd), key=os.fsencode))))
        if self._overlay and rel and _is_opaque(dfd):
            self._add_empty(f"{rel}/{OPAQUE}", os.fstat(dfd))

    def _add_empty(self, name: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.REGTYPE
        info.mode = st.st_mode & 0o7777 if stat.S_ISCHR(st.st_mode) else 0o644
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = self._mtime(st)
        self._tar.addfile(info)
        self.entries += 1

    def _add(self, dfd: int, base: str, name: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(name)
        info.mode = st.st_mode & 0o7777
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = self._mtime(st)
        info.pax_headers = _xattrs(f"/proc/self/fd/{dfd}/{base}")
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        if stat.S_ISREG(mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in self._links:
            info.type = tarfile.LNKTYPE
            info.linkname = self._links[(st.st_dev, st.st_ino)]
            self._tar.addfile(info)
        elif stat.S_ISREG(mode):
            if st.st_nlink > 1:
                self._links[(st.st_dev, st.st_ino)] = name
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            with os.fdopen(fd, "rb") as f:
                self._tar.addfile(info, f)
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self._tar.addfile(info)
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(base, dir_fd=dfd)
            self._tar.addfile(info)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self._tar.addfile(info)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            self._tar.addfile(info)
        else:
            return
        self.entries += 1

    def _mtime(self, st: os.stat_result) -> int:
        mtime = st.st_mtime_ns // 1_000_000_000
        return mtime if self._clamp is None else min(mtime, self._clamp)



def _xattrs(path: str) -> dict[str, str]:
    """The xattrs of path (not followed if a symlink), as PAX records, overlayfs' own left out."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        value = os.getxattr(path, name, follow_symlinks=False)
        out[_XATTR_PAX + name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(dfd: int) -> bool:
    try:
        return os.getxattr(dfd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False
