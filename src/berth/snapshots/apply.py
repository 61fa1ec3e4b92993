"""Apply one layer's tar stream to an empty directory: berth's own extractor.

Never `tarfile.extractall` (Python 3.11.7's extraction filters have known bypasses). tarfile is
used only to parse headers (`TarInfo.fromtarfile` over our forward-only `LayerReader`); all
filesystem work happens here, relative to directory fds:

- every entry name is cleaned lexically; a name climbing above the root (`../x`, `a/../../x`,
  `/../x`) is refused ("path escapes rootfs"); absolute names land inside the root;
- parent directories are opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a
  symlink in the path (`d -> /`, `d -> ../..`, absolute or chained) resolves inside the root,
  as it would inside the container; the last component is created with O_EXCL / O_NOFOLLOW
  semantics and is never followed;
- hardlinks may point only at entries already inside this layer;
- whiteouts become overlayfs whiteouts in the layer's own directory (`.wh.name` -> char device 0:0,
  `.wh..wh..opq` -> xattr trusted.overlay.opaque=y); overlayfs does the merge. Malformed names
  are refused ("invalid whiteout"). `trusted.overlay.*` xattrs in the tar itself are dropped:
  only whiteouts may steer overlayfs;
- directory metadata (owner, mode, xattrs, times) is applied last, deepest first, so that
  creating a directory's contents does not change its mtime afterwards.

The caller gives an empty directory and removes it if this raises (berth.snapshots.store does).
May import: berth.oci, berth.util, berth.errors (and zstandard through .stream).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from berth.errors import BerthError, Conflict, Corrupt, LimitExceeded, Unavailable, UnsafePath
from berth.oci.digest import Digest
from berth.snapshots.header import parse_basic
from berth.snapshots.stream import Compression, LayerReader
from berth.util import linux

WHITEOUT = ".wh."
WHITEOUT_META = ".wh..wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_OPEN_DIRS = 64
# Header errors tarfile raises but its type stubs do not list.
_EOF_HEADER: type[Exception] = vars(tarfile)["EOFHeaderError"]
_EMPTY_HEADER: type[Exception] = vars(tarfile)["EmptyHeaderError"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 64 << 30          # uncompressed tar bytes per layer
    max_entries: int = 2_000_000       # tar headers per layer
    max_record: int = 1 << 20          # one PAX record block or GNU long name


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class ApplyResult:
    diff_id: Digest          # sha256 of the whole uncompressed tar stream
    size: int                # its length in bytes
    entries: int
    compression: Compression


def clean_name(name: str, label: str, what: str = "entry") -> tuple[str, ...]:
    """The components of a tar name inside the root; refuses names that climb out of it."""
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise UnsafePath(f"layer {label}: {what} {name!r}: path escapes rootfs")
            parts.pop()
        else:
            parts.append(comp)
    return tuple(parts)


def apply_layer(stream: BinaryIO, target: Path, *, compression: Compression | None = None,
                limits: Limits = DEFAULT_LIMITS, label: str = "layer",
                same_owner: bool | None = None) -> ApplyResult:
    """Unpack a (compressed) layer tar stream into the empty directory target.

    compression None means: detect it from the magic bytes. same_owner None means: set owners
    when running as root. Raises Corrupt (bad gzip/zstd/tar), UnsafePath, LimitExceeded,
    Unavailable (disk full, read error); target is then left half-written for the caller to remove.
    """
    root_fd = os.open(target, _DIR_FLAGS | os.O_NOFOLLOW)
    applier = _Applier(root_fd, label, os.geteuid() == 0 if same_owner is None else same_owner,
                       limits.max_bytes)
    entries = 0
    try:
        with LayerReader(stream, compression, label, limits.max_bytes, limits.max_record) as reader:
            for info in _members(reader, label):
                entries += 1
                if entries > limits.max_entries:
                    raise LimitExceeded(f"layer {label}: more than the limit of {limits.max_entries} entries")
                applier.apply(info, reader)
            applier.finish()
            return ApplyResult(reader.diff_id(), reader.size, entries, reader.compression)
    finally:
        applier.close()
        os.close(root_fd)


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """How `docker cp` (the archive PUT) differs from a layer: no whiteouts, an existing destination directory,
    optionally one owner for everything, optionally no replacing a directory by a non-directory or back."""
    no_overwrite_dir_non_dir: bool = False
    owner: tuple[int, int] | None = None        # (uid, gid) for every entry; None: the tar's


def extract_into(stream: BinaryIO, root: int, dest: tuple[str, ...], options: CopyOptions = CopyOptions(), *,
                 limits: Limits = DEFAULT_LIMITS, label: str = "archive") -> int:
    """Unpack an uncompressed tar stream under dest (cleaned components, relative to the directory fd root, which
    need not be empty), resolving every path inside root as apply_layer does. `.wh.` names are plain files here.
    Returns the number of entries."""
    applier = _Applier(root, label, True, limits.max_bytes, prefix=dest, copy=options)
    entries = 0
    try:
        with LayerReader(stream, Compression.NONE, label, limits.max_bytes, limits.max_record) as reader:
            for info in _members(reader, label):
                entries += 1
                if entries > limits.max_entries:
                    raise LimitExceeded(f"{label}: more than the limit of {limits.max_entries} entries")
                applier.apply(info, reader)
            applier.finish()
    finally:
        applier.close()
    return entries


class _Cursor:
    """What `TarInfo.fromtarfile` reads from a TarFile: the stream, the text codec, the offsets."""

    def __init__(self, reader: LayerReader) -> None:
        self.fileobj = reader
        self.encoding = "utf-8"
        self.errors = "surrogateescape"
        self.offset = 0
        self.pax_headers: dict[str, str] = {}


def _members(reader: LayerReader, label: str) -> Iterator[tarfile.TarInfo]:
    cursor = _Cursor(reader)
    while True:
        reader.seek(cursor.offset)          # skips the data the previous entry did not read
        # Plain one-block headers take the fast path; tarfile parses everything else (and after a
        # global PAX header, every header, since that header's values apply to all that follow).
        fast = None if cursor.pax_headers else parse_basic(reader.peek(tarfile.BLOCKSIZE), cursor.offset)
        try:
            if fast is not None:
                reader.skip(tarfile.BLOCKSIZE)
                info, cursor.offset = fast
            else:
                info = tarfile.TarInfo.fromtarfile(cast(tarfile.TarFile, cursor))
        except _EOF_HEADER:
            # End-of-archive: a zero block. Like Go's reader (Docker), the block after it must be
            # zero too; what follows is read only to complete the diff_id.
            rest = reader.drain()
            if rest[:512].strip(b"\0"):
                raise Corrupt(f"layer {label}: tar stream has data after its end-of-archive block")
            return
        except _EMPTY_HEADER:
            return                          # stream ended at a member boundary, without end blocks
        except BerthError:
            raise
        except (tarfile.TarError, ValueError, UnicodeError, RecursionError, IndexError) as exc:
            raise Corrupt(f"layer {label}: invalid tar header at byte {reader.tell()}: {exc}") from exc
        if info.size < 0:
            raise Corrupt(f"layer {label}: tar entry {info.name!r} has a negative size")
        yield info


class _Applier:
    def __init__(self, root_fd: int, label: str, same_owner: bool, max_bytes: int,
                 prefix: tuple[str, ...] = (), copy: CopyOptions | None = None) -> None:
        self._root, self._label, self._same_owner = root_fd, label, same_owner
        self._prefix, self._copy = prefix, copy      # copy set: a `docker cp` archive, not a layer
        self._max_bytes = max_bytes          # also bounds a sparse file's apparent size
        self._dirs: dict[tuple[str, ...], tarfile.TarInfo] = {}
        self._open: dict[tuple[str, ...], int] = {}     # directory fds by cleaned path
        self._stale = False                              # a directory was removed: drop _open

    # -- entries -----------------------------------------------------------------------------
    def apply(self, info: tarfile.TarInfo, reader: LayerReader) -> None:
        if self._stale or len(self._open) > _MAX_OPEN_DIRS:
            self.close()
        parts = self._prefix + clean_name(info.name, self._label)
        try:
            self._apply(parts, info, reader)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise Unavailable(f"layer {self._label}: no space left on device while unpacking "
                                  f"{info.name!r}; free some space and retry") from exc
            raise Corrupt(f"layer {self._label}: cannot apply entry {info.name!r}: "
                          f"{exc.strerror or exc}") from exc
        except (ValueError, OverflowError) as exc:   # a NUL in a name, an id or time out of range
            raise Corrupt(f"layer {self._label}: cannot apply entry {info.name!r}: {exc}") from exc

    def _apply(self, parts: tuple[str, ...], info: tarfile.TarInfo, reader: LayerReader) -> None:
        if parts == self._prefix:                # "./": the layer root (or the cp destination) itself
            if info.isdir():
                self._dirs[parts] = info
                return
            raise Corrupt(f"layer {self._label}: entry {info.name!r} would replace the root directory")
        if self._copy is not None:
            self._apply_entry(parts, info, reader)
            return
        for comp in parts[:-1]:
            if comp.startswith(WHITEOUT_META):
                return                           # inside AUFS metadata (.wh..wh.plnk/...): not content
            if comp.startswith(WHITEOUT):
                raise Corrupt(f"layer {self._label}: invalid whiteout in {info.name!r} (a whiteout has no children)")
        if parts[-1].startswith(WHITEOUT):
            self._whiteout(parts, info)
            return
        self._apply_entry(parts, info, reader)

    def _apply_entry(self, parts: tuple[str, ...], info: tarfile.TarInfo, reader: LayerReader) -> None:
        base = parts[-1]
        pfd = self._dir(parts[:-1], create=True)
        if self._copy is not None and self._copy.no_overwrite_dir_non_dir:
            self._check_overwrite(pfd, parts, info)
        if info.isdir():
            self._mkdir(pfd, base)
            self._dirs[parts] = info
        elif info.isreg():
            self._file(pfd, base, info, reader)
        elif info.issym():
            self._create(pfd, base, lambda: os.symlink(info.linkname, base, dir_fd=pfd))
            self._meta_path(pfd, base, info, symlink=True)
        elif info.islnk():
            self._hardlink(pfd, base, info)
        elif info.ischr() or info.isblk():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            dev = os.makedev(info.devmajor, info.devminor)
            self._create(pfd, base, lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd))
            self._meta_path(pfd, base, info)
        elif info.isfifo():
            self._create(pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
            self._meta_path(pfd, base, info)
        else:
            raise Corrupt(f"layer {self._label}: entry {info.name!r} has unsupported tar type {info.type!r}")

    def _whiteout(self, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        base = parts[-1]
        if base == OPAQUE:
            os.setxattr(self._dir(parts[:-1], create=True), OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META):
            return                               # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
        name = base[len(WHITEOUT):]
        if name in ("", ".", ".."):
            raise Corrupt(f"layer {self._label}: invalid whiteout {info.name!r}")
        pfd = self._dir(parts[:-1], create=True)
        try:
            os.mknod(name, stat.S_IFCHR, 0, dir_fd=pfd)
        except FileExistsError:
            # This layer has the entry itself (or whited it out already): that hides the lower one.
            pass

    def _file(self, pfd: int, base: str, info: tarfile.TarInfo, reader: LayerReader) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = self._create(pfd, base, lambda: os.open(base, flags, 0o600, dir_fd=pfd))
        try:
            reader.seek(info.offset_data)
            if info.sparse is None:
                reader.copy_to(fd, info.size)
            else:
                if info.size > self._max_bytes:
                    raise LimitExceeded(f"layer {self._label}: sparse file {info.name!r} of {info.size} bytes "
                                        f"exceeds the limit of {self._max_bytes} bytes")
                sparse = cast(list[tuple[int, int]], info.sparse)
                for offset, length in sparse:
                    if offset < 0 or length < 0 or offset + length > info.size:
                        raise Corrupt(f"layer {self._label}: sparse file {info.name!r} has a bad map")
                    os.lseek(fd, offset, os.SEEK_SET)
                    reader.copy_to(fd, length)
                os.ftruncate(fd, info.size)
            if self._same_owner:
                os.fchown(fd, *self._ids(info))
            os.fchmod(fd, info.mode & 0o7777)    # after chown, which clears setuid bits
            self._xattrs(fd, info)
            os.utime(fd, ns=_times(info))
        finally:
            os.close(fd)

    def _check_overwrite(self, pfd: int, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        try:
            st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode) and not info.isdir():
            raise Conflict(f'cannot overwrite directory "{"/" + "/".join(parts)}" with non-directory '
                           f'"/{"/".join(self._prefix)}"')
        if not stat.S_ISDIR(st.st_mode) and info.isdir():
            raise Conflict(f'cannot overwrite non-directory "{"/" + "/".join(parts)}" with directory '
                           f'"/{"/".join(self._prefix)}"')

    def _ids(self, info: tarfile.TarInfo) -> tuple[int, int]:
        if self._copy is not None and self._copy.owner is not None:
            return self._copy.owner
        return info.uid, info.gid

    def _hardlink(self, pfd: int, base: str, info: tarfile.TarInfo) -> None:
        target = self._prefix + clean_name(info.linkname, self._label, "hardlink target of")
        if target == self._prefix:
            raise Corrupt(f"layer {self._label}: hardlink {info.name!r} points at the root directory")
        try:
            tfd = self._dir(target[:-1], create=False)
            src = target[-1]
            os.stat(src, dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise Corrupt(f"layer {self._label}: hardlink {info.name!r} points at {info.linkname!r}, "
                          "which is not in this layer") from exc
        self._create(pfd, base, lambda: os.link(src, base, src_dir_fd=tfd, dst_dir_fd=pfd,
                                                follow_symlinks=False))

    # -- creation helpers --------------------------------------------------------------------
    def _create(self, pfd: int, base: str, make: Callable[[], int | None]) -> int:
        """make() creates base exclusively; an existing entry (an earlier duplicate) is replaced."""
        try:
            return make() or 0
        except FileExistsError:
            self._remove(pfd, base)
            return make() or 0

    def _remove(self, pfd: int, base: str) -> None:
        # Any removal may invalidate cached directory fds: a cached path may have led through a
        # symlink or a directory that is now gone. They are dropped before the next entry.
        self._stale = True
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=pfd)
        else:
            os.unlink(base, dir_fd=pfd)

    def _mkdir(self, pfd: int, base: str) -> None:
        try:
            os.mkdir(base, 0o755, dir_fd=pfd)
            return
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return
        self._stale = True              # base may have been a cached symlink to a directory
        os.unlink(base, dir_fd=pfd)
        os.mkdir(base, 0o755, dir_fd=pfd)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            # A whiteout earlier in this layer hid the lower entry; a directory recreated under
            # that name must not show the lower directory's contents (image-spec layer.md).
            fd = os.open(base, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)

    def _dir(self, path: tuple[str, ...], create: bool) -> int:
        """An fd of the directory at path, resolved inside the root; cached, owned by the cache."""
        fd = self._open.get(path)
        if fd is not None:
            return fd
        fd = os.dup(self._root) if not path else self._openat2(path, create)
        self._open[path] = fd
        return fd

    def _openat2(self, path: tuple[str, ...], create: bool) -> int:
        try:
            return linux.openat2(self._root, "/".join(path), _DIR_FLAGS, _IN_ROOT)
        except FileNotFoundError:
            if not create:
                raise
        # Missing parents are created the way Docker does: 0755, owned by the unpacking user.
        parent = self._dir(path[:-1], create=True)
        try:
            os.mkdir(path[-1], 0o755, dir_fd=parent)
        except FileExistsError:
            pass      # e.g. a dangling symlink: the openat2 below reports it
        return linux.openat2(self._root, "/".join(path), _DIR_FLAGS, _IN_ROOT)

    # -- metadata ----------------------------------------------------------------------------
    def _meta_path(self, pfd: int, base: str, info: tarfile.TarInfo, symlink: bool = False) -> None:
        if self._same_owner:
            os.chown(base, *self._ids(info), dir_fd=pfd, follow_symlinks=False)
        if not symlink:
            # base was just created by us as a device or fifo (not a symlink), in our private dir.
            os.chmod(base, info.mode & 0o7777, dir_fd=pfd)
        if any(k.startswith(_XATTR_PAX) for k in info.pax_headers):
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", info)
        os.utime(base, ns=_times(info), dir_fd=pfd, follow_symlinks=False)

    def _xattrs(self, where: int | str, info: tarfile.TarInfo) -> None:
        for key, value in info.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX):]
            if name.startswith("trusted.overlay."):
                continue
            try:
                os.setxattr(where, name, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=isinstance(where, int))
            except OSError as exc:
                if exc.errno != errno.ENOTSUP:
                    raise

    def finish(self) -> None:
        """Apply directory metadata, deepest first, after everything inside them exists."""
        self.close()
        for path in sorted(self._dirs, key=len, reverse=True):
            info = self._dirs[path]
            try:
                fd = (os.dup(self._root) if not path else
                      linux.openat2(self._root, "/".join(path), _DIR_FLAGS | os.O_NOFOLLOW, _IN_ROOT))
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue                     # replaced by a later entry of another kind
                raise
            try:
                if self._same_owner:
                    os.fchown(fd, *self._ids(info))
                os.fchmod(fd, info.mode & 0o7777)
                self._xattrs(fd, info)
                os.utime(fd, ns=_times(info))
            except OSError as exc:
                raise Corrupt(f"layer {self._label}: cannot set metadata of {info.name!r}: "
                              f"{exc.strerror or exc}") from exc
            finally:
                os.close(fd)

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
        self._stale = False


def _times(info: tarfile.TarInfo) -> tuple[int, int]:
    mtime = int(info.mtime * 1_000_000_000)
    atime_text = info.pax_headers.get("atime")
    try:
        atime = int(float(atime_text) * 1_000_000_000) if atime_text else mtime
    except ValueError:
        atime = mtime
    return atime, mtime
