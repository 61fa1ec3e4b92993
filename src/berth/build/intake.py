"""The build context as it arrives: a tar stream (plain, gzip, bzip2, xz or zstd) indexed while it streams, and
unpacked only where a step needs its files.

`ContextIntake` is a push parser (no I/O of its own): `feed(chunk)` for each piece of the uncompressed tar,
`finish()` for the `Context`. While the bytes pass it parses the headers (ustar, GNU long names, PAX path,
linkpath, size and mtime), hashes every regular file's contents with sha256 and appends the bytes to a spool (in
memory up to a budget, in 8 MiB blocks a small pool keeps warm between builds, then a scratch file; never
fsynced: the context is scratch). The `Context` is then a
read-only tree: `lstat`, `listdir`, `readlink` answer from the index (as os.stat_result), `digest_of` gives a
file's sha256 so COPY's cache key needs no second read, and `materialize(paths)` writes just those paths (and
their parent directories) under `root` from the spool, with dir-fd relative, O_NOFOLLOW calls into directories it
created itself. A fully cached build therefore writes no file of its context.

The index follows what an extractor would leave: names cleaned (a leading '/' or './' dropped), a name climbing
out with '..' refused, a later entry replacing an earlier one (a directory keeps its children when replaced by a
directory, loses them otherwise), missing parents made as 0755 directories, a hard link sharing its target's
contents, an entry below a symlink or a file refused. Whiteout names (.wh.*) are ordinary files, as in
dockerd's context extraction.

(Measured: unpacking 50 MB with the layer extractor and hashing the files afterwards cost ~0.4 s of a cached
build; keeping the context as a tar and hashing it through tarfile while it streams cost about as much. This
parser hashes at memory speed and copies nothing but the spool.)

May import: berth.images.compression, berth.errors.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from berth.errors import Corrupt, InvalidArgument, LimitExceeded, UnsafePath
from berth.images.compression import Prefixed, decompressed, sniff

DEFAULT_CONTEXT_LIMIT = 8 << 30
MEMORY_BUDGET = 128 << 20       # spool bytes kept in memory before they go to a scratch file
MAX_ENTRIES = 2_000_000
SPOOL_BLOCK = 8 << 20
POOL_BYTES = 64 << 20
POOL_IDLE = 30.0
_BLOCK = 512
_DOCKERFILE_LIMIT = 16 << 20
_READ = 1 << 20
_EMPTY_SHA = hashlib.sha256().digest()

# entry kinds, as the stat S_IF* values
REG, DIR, LNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK
_TYPES = {b"0": REG, b"\0": REG, b"7": REG, b"2": LNK, b"5": DIR, b"6": stat.S_IFIFO,
          b"3": stat.S_IFCHR, b"4": stat.S_IFBLK}


class _Entry:
    """One path of the context as the index knows it. (Slotted, not frozen: the parser makes 100,000s of them.)"""
    __slots__ = ("kind", "mode", "size", "mtime", "link", "digest", "offset", "rdev")

    def __init__(self, kind: int, mode: int, size: int = 0, mtime: int = 0, link: str = "",
                 digest: bytes = _EMPTY_SHA, offset: int = 0, rdev: int = 0) -> None:
        self.kind, self.mode, self.size, self.mtime, self.link = kind, mode, size, mtime, link
        self.digest, self.offset, self.rdev = digest, offset, rdev


class _Spool:
    """The uncompressed stream's bytes, addressable by offset: copied into blocks in memory, or a scratch file
    past budget. Blocks come from, and go back to, a small pool kept warm between builds (see _BlockPool)."""

    def __init__(self, dest: Path, budget: int) -> None:
        self._dest, self._budget = dest, budget
        self._chunks: list[bytearray] = []
        self._starts: list[int] = []
        self._fill = 0          # bytes used in the last block
        self.size = 0
        self._fd = -1

    def append(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self._fd < 0 and self.size + len(view) > self._budget:
            self._spill()
        while view and self._fd < 0:
            if not self._chunks or self._fill == len(self._chunks[-1]):
                self._chunks.append(_POOL.take())
                self._starts.append(self.size)
                self._fill = 0
            block = self._chunks[-1]
            n = min(len(view), len(block) - self._fill)
            block[self._fill:self._fill + n] = view[:n]
            self._fill += n
            self.size += n
            view = view[n:]
        if view:
            _write_all(self._fd, view)
            self.size += len(view)

    def _spill(self) -> None:
        self._fd = os.open(self._dest / "context.tar", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        for i, chunk in enumerate(self._chunks):
            _write_all(self._fd, memoryview(chunk)[:self._fill if i == len(self._chunks) - 1 else len(chunk)])
        _POOL.give_back(self._chunks)
        self._chunks, self._starts = [], []

    def copy_to(self, fd: int, offset: int, size: int) -> None:
        """Write size bytes from offset to fd."""
        if self._fd >= 0:
            while size:
                n = os.copy_file_range(self._fd, fd, size, offset)
                if n <= 0:
                    raise Corrupt("the build context's scratch copy is shorter than its index")
                offset += n
                size -= n
            return
        i = _bisect(self._starts, offset)
        while size:
            chunk = self._chunks[i]
            start = offset - self._starts[i]
            n = min(size, len(chunk) - start)
            _write_all(fd, memoryview(chunk)[start:start + n])
            offset += n
            size -= n
            i += 1

    def read(self, offset: int, size: int) -> bytes:
        if self._fd >= 0:
            return os.pread(self._fd, size, offset)
        out = bytearray()
        i = _bisect(self._starts, offset)
        while len(out) < size:
            chunk = self._chunks[i]
            start = offset + len(out) - self._starts[i]
            out += memoryview(chunk)[start:start + size - len(out)]
            i += 1
        return bytes(out)

    def close(self) -> None:
        _POOL.give_back(self._chunks)
        self._chunks, self._starts = [], []
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._dest / "context.tar")


class _BlockPool:
    """Spool blocks of finished builds, kept for the next build for a while. A fresh block costs a page fault and
    a zeroed page per 4 KiB (~40 ms for 50 MB on these VMs, as much as hashing it), a warm one a copy; the pool
    holds at most POOL_BYTES and is emptied POOL_IDLE seconds after the last build gave blocks back."""

    def __init__(self) -> None:
        self._free: list[bytearray] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def take(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(SPOOL_BLOCK)

    def give_back(self, blocks: list[bytearray]) -> None:
        if not blocks:
            return
        with self._lock:
            room = POOL_BYTES // SPOOL_BLOCK - len(self._free)
            self._free.extend(b for b in blocks[:max(room, 0)] if len(b) == SPOOL_BLOCK)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(POOL_IDLE, self.drain)
            self._timer.daemon = True
            self._timer.start()

    def drain(self) -> None:
        with self._lock:
            self._free.clear()
            self._timer = None

    def __len__(self) -> int:
        return len(self._free)


_POOL = _BlockPool()


def _bisect(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid
    return lo


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Context:
    """A received context: its index and spool. `root` is where materialized paths appear; every path method
    takes a path under root (paths elsewhere, such as a heredoc's temporary file, are the host's: os answers)."""

    def __init__(self, root: Path, size: int, entries: dict[str, _Entry], children: dict[str, dict[str, None]],
                 spool: _Spool) -> None:
        self.root = root
        self.size = size
        self._entries, self._children, self._spool = entries, children, spool
        self._prefix = str(root).rstrip("/") + "/"
        self._done: set[str] = set()

    # the tree, read-only ------------------------------------------------------------------------------------

    def _rel(self, path: str | Path) -> str | None:
        text = os.fspath(path)
        if text == str(self.root):
            return ""
        return text[len(self._prefix):] if text.startswith(self._prefix) else None

    def _get(self, rel: str) -> _Entry:
        entry = self._entries.get(rel)
        if entry is not None:
            return entry
        parent = rel.rpartition("/")[0]
        while parent:       # ENOTDIR when a parent is not a directory, as lstat says it
            up = self._entries.get(parent)
            if up is not None:
                if up.kind != DIR:
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", rel)
                break
            parent = parent.rpartition("/")[0]
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", rel)

    def lstat(self, path: str | Path) -> os.stat_result:
        rel = self._rel(path)
        if rel is None:
            return os.lstat(path)
        e = self._get(rel)
        size = len(e.link.encode("utf-8", "surrogateescape")) if e.kind == LNK else e.size
        return os.stat_result((e.kind | e.mode, 0, 0, 1, 0, 0, size, e.mtime, e.mtime, e.mtime))

    def listdir(self, path: str | Path) -> list[str]:
        rel = self._rel(path)
        if rel is None:
            return os.listdir(path)
        if self._get(rel).kind != DIR:
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", rel)
        return list(self._children.get(rel, ()))

    def readlink(self, path: str | Path) -> str:
        rel = self._rel(path)
        if rel is None:
            return os.readlink(path)
        e = self._get(rel)
        if e.kind != LNK:
            raise OSError(errno.EINVAL, "Invalid argument", rel)
        return e.link

    def digest_of(self, path: Path) -> str | None:
        """A regular file's sha256 (hex), known from the stream; None for paths outside the context."""
        rel = self._rel(path)
        if rel is None:
            return None
        e = self._entries.get(rel)
        return e.digest.hex() if e is not None and e.kind == REG else None

    def read_bytes(self, path: Path, limit: int) -> bytes:
        """A regular file's contents (at most limit bytes) without materializing it."""
        rel = self._rel(path)
        e = self._get(rel) if rel is not None else None
        if e is None or e.kind != REG:
            raise FileNotFoundError(errno.ENOENT, "not a regular file in the build context", str(path))
        return self._spool.read(e.offset, min(e.size, limit))

    # writing paths out ---------------------------------------------------------------------------------------

    def materialize(self, paths: Iterable[Path]) -> None:
        """Write paths (each with everything below it, and its parent directories) under root. Paths outside
        the context, or not in it, are left alone."""
        for path in paths:
            rel = self._rel(path)
            if rel is None or rel in self._done or rel not in self._entries:
                continue
            with self._open_parent(rel) as (parent_fd, name):
                self._write(parent_fd, name, rel)

    @contextlib.contextmanager
    def _open_parent(self, rel: str) -> Iterator[tuple[int, str]]:
        """An fd of rel's parent directory (made, with its own parents, where missing) and rel's last name;
        for the root itself, the fd of root's parent."""
        if "" not in self._done:
            self.root.mkdir(mode=0o700)
            os.chmod(self.root, self._entries[""].mode)
            self._done.add("")
        if not rel:
            fd = os.open(self.root.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd, self.root.name
            finally:
                os.close(fd)
            return
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            parts = rel.split("/")
            done = ""
            for part in parts[:-1]:
                done = f"{done}/{part}" if done else part
                if done not in self._done:
                    entry = self._entries[done]
                    os.mkdir(part, 0o700, dir_fd=fd)
                    os.chmod(part, entry.mode, dir_fd=fd, follow_symlinks=False)
                    self._done.add(done)
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nxt
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _write(self, parent_fd: int, name: str, rel: str) -> None:
        e = self._entries[rel]
        if rel not in self._done:
            if e.kind == REG:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=parent_fd)
                try:
                    self._spool.copy_to(fd, e.offset, e.size)
                    os.fchmod(fd, e.mode)
                    os.utime(fd, (e.mtime, e.mtime))
                finally:
                    os.close(fd)
            elif e.kind == DIR:
                if rel:
                    os.mkdir(name, 0o700, dir_fd=parent_fd)
                    os.chmod(name, e.mode, dir_fd=parent_fd, follow_symlinks=False)
            elif e.kind == LNK:
                os.symlink(e.link, name, dir_fd=parent_fd)
            elif e.kind == stat.S_IFIFO:
                os.mkfifo(name, e.mode, dir_fd=parent_fd)
            else:
                os.mknod(name, e.kind | e.mode, e.rdev, dir_fd=parent_fd)
            self._done.add(rel)
        if e.kind == DIR and self._children.get(rel):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                for child in self._children[rel]:
                    self._write(fd, child, f"{rel}/{child}" if rel else child)
            finally:
                os.close(fd)
        if e.kind == DIR and rel:
            os.utime(name, (e.mtime, e.mtime), dir_fd=parent_fd, follow_symlinks=False)

    def close(self) -> None:
        """Drop the spool (the materialized tree under root is the caller's to remove)."""
        self._spool.close()


class ContextIntake:
    """The push parser: feed() the uncompressed tar's bytes in any pieces, then finish()."""

    def __init__(self, dest: Path, limit: int = DEFAULT_CONTEXT_LIMIT, memory_budget: int = MEMORY_BUDGET) -> None:
        self._dest, self._limit = dest, limit
        self._spool = _Spool(dest, memory_budget)
        self._entries: dict[str, _Entry] = {"": _Entry(DIR, 0o755)}
        self._children: dict[str, dict[str, None]] = {"": {}}
        self._head = bytearray()       # a header block (or metadata payload) split across pieces
        self._need = _BLOCK            # bytes of the current header or metadata payload still missing
        self._meta = b""               # type of the metadata payload being read (x, g, L, K), else b""
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._data_left = 0            # file data still to come for the current entry
        self._pad = 0                  # padding after it
        self._meta_pad = 0             # padding after the metadata payload being read
        self._hash: hashlib._Hash | None = None
        self._current: _Entry | None = None
        self._ended = False
        self._plain: bytearray | None = None   # the body is not a tar: a Dockerfile alone
        self._start: bytearray | None = bytearray()   # the body's first bytes, until a whole block is in

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._spool.size + len(data) > self._limit:
            raise LimitExceeded(f"the build context is larger than berth's limit of {self._limit} bytes: leave "
                                f"large files out of it with .dockerignore")
        if self._start is not None:     # the first block decides: a tar, or a Dockerfile alone
            self._start += data
            if len(self._start) < _BLOCK:
                return
            data, self._start = bytes(self._start), None
            if not _is_tar_header(data[:_BLOCK]):
                self._plain = bytearray()
        if self._plain is not None:
            self._plain += data
            if len(self._plain) > min(self._limit, _DOCKERFILE_LIMIT):
                raise LimitExceeded("the build body is neither a tar archive nor a Dockerfile of a sensible size")
            return
        base = self._spool.size
        self._spool.append(data)
        if self._ended:
            return
        view = memoryview(data)
        i, n = 0, len(data)
        while i < n and not self._ended:
            if self._data_left:
                k = min(self._data_left, n - i)
                assert self._hash is not None
                self._hash.update(view[i:i + k])
                i += k
                self._data_left -= k
                if not self._data_left:
                    self._end_file()
            elif self._pad:
                k = min(self._pad, n - i)
                i += k
                self._pad -= k
            else:
                k = min(self._need, n - i)
                self._head += view[i:i + k]
                i += k
                self._need -= k
                if not self._need:
                    self._block_done(base + i)

    def _block_done(self, offset: int) -> None:
        """A whole header, or a whole metadata payload, is in _head; offset: the stream position after it."""
        block = bytes(self._head)
        self._head.clear()
        if self._meta:
            kind, self._meta = self._meta, b""
            self._need = _BLOCK
            self._pad = self._meta_pad
            self._metadata(kind, block)
            return
        self._need = _BLOCK
        if block == bytes(_BLOCK):
            self._ended = True      # the first zero block ends the archive; anything after it is ignored
            return
        self._header(block, offset)

    def _header(self, block: bytes, offset: int) -> None:
        _check_sum(block)
        flag = block[156:157]
        size = _number(block[124:136])
        if size < 0:
            raise Corrupt("the build context has a tar header with a negative size")
        if flag in (b"x", b"g", b"L", b"K"):
            if size > (1 << 20):
                raise LimitExceeded("the build context has a tar metadata header over 1 MiB")
            self._meta = flag
            self._need = size
            self._meta_pad = -size % _BLOCK     # the padding comes after the payload
            if not size:
                self._meta = b""
                self._need = _BLOCK
                self._metadata(flag, b"")
            return
        pax, self._pax = self._pax, {}
        name = self._long_name if self._long_name is not None else _name(block)
        link = self._long_link if self._long_link is not None else _cstr(block[157:257])
        self._long_name = self._long_link = None
        name = pax.get("path", name)
        link = pax.get("linkpath", link)
        if "size" in pax:
            size = _pax_int(pax["size"])
        mtime = int(float(pax["mtime"])) if "mtime" in pax else _number(block[136:148])
        mode = _number(block[100:108]) & 0o7777
        rel = _clean(name)
        if flag == b"1":
            self._hardlink(rel, _clean(link))
            self._skip(size)
            return
        kind = _TYPES.get(flag)
        if kind is None:
            raise InvalidArgument(f"the build context has entry {name!r} of an unsupported tar type {flag!r}")
        if kind != REG:
            rdev = os.makedev(_number(block[329:337]), _number(block[337:345])) \
                if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
            self._put(rel, _Entry(kind, mode, 0, mtime, link if kind == LNK else "", rdev=rdev))
            self._skip(size)
            return
        self._current = _Entry(REG, mode, size, mtime, offset=offset)
        self._put(rel, self._current)
        self._hash = hashlib.sha256()
        self._data_left, self._pad = size, -size % _BLOCK
        if not size:
            self._end_file()

    def _skip(self, size: int) -> None:
        """Data of an entry that has none of its own (a link or a directory with a size): passed over."""
        self._data_left, self._pad = 0, size + (-size % _BLOCK)

    def _end_file(self) -> None:
        assert self._current is not None and self._hash is not None
        self._current.digest = self._hash.digest()
        self._current, self._hash = None, None

    def _metadata(self, kind: bytes, payload: bytes) -> None:
        if kind == b"L":
            self._long_name = _cstr(payload)
        elif kind == b"K":
            self._long_link = _cstr(payload)
        elif kind == b"x":
            self._pax = _pax_records(payload)
        # b"g": global PAX headers are ignored, as Go's reader (hence dockerd) leaves them out of its entries

    def _hardlink(self, rel: str, target: str) -> None:
        entry = self._entries.get(target)
        if entry is None or entry.kind != REG:
            raise InvalidArgument(f"the build context has a hard link {rel!r} to {target!r}, which is not a "
                                  f"regular file before it in the archive")
        self._put(rel, _Entry(REG, entry.mode, entry.size, entry.mtime, digest=entry.digest, offset=entry.offset))

    def _put(self, rel: str, entry: _Entry) -> None:
        if not rel:
            if entry.kind != DIR:
                raise InvalidArgument("the build context's root is not a directory")
            self._entries[""] = _Entry(DIR, entry.mode, mtime=entry.mtime)
            return
        if len(self._entries) >= MAX_ENTRIES:
            raise LimitExceeded(f"the build context has more than {MAX_ENTRIES} entries")
        parent, _, name = rel.rpartition("/")
        self._parent_dir(parent, rel)
        old = self._entries.get(rel)
        if old is not None and old.kind == DIR and entry.kind != DIR:
            self._drop_children(rel)
        if entry.kind == DIR:
            self._children.setdefault(rel, {})
        self._entries[rel] = entry
        self._children[parent][name] = None

    def _parent_dir(self, parent: str, rel: str) -> None:
        entry = self._entries.get(parent)
        if entry is None:
            up, _, name = parent.rpartition("/")
            self._parent_dir(up, rel)
            self._entries[parent] = _Entry(DIR, 0o755)
            self._children[parent] = {}
            self._children[up][name] = None
        elif entry.kind != DIR:
            raise UnsafePath(f"the build context has entry {rel!r} below {parent!r}, which is not a directory")

    def _drop_children(self, rel: str) -> None:
        for child in self._children.pop(rel, {}):
            path = f"{rel}/{child}"
            if self._entries.pop(path).kind == DIR:
                self._drop_children(path)

    def finish(self) -> Context:
        root = self._dest / "root"
        if self._start:
            self._plain = self._start    # shorter than a tar header: a Dockerfile
        if self._plain is not None:
            return self._dockerfile_only(root)
        if self._data_left or self._need not in (0, _BLOCK) or self._head or self._meta:
            raise Corrupt("the build context is truncated: the tar stream ends inside an entry")
        return Context(root, self._spool.size, self._entries, self._children, self._spool)

    def _dockerfile_only(self, root: Path) -> Context:
        """A body that is not a tar is a Dockerfile with an empty context, as dockerd takes it."""
        assert self._plain is not None
        data = bytes(self._plain)
        self._spool.append(data)
        self._children[""]["Dockerfile"] = None
        self._entries["Dockerfile"] = _Entry(REG, 0o644, len(data), digest=hashlib.sha256(data).digest())
        return Context(root, len(data), self._entries, self._children, self._spool)

    def abort(self) -> None:
        self._spool.close()


def receive_context(stream: BinaryIO, dest: Path, limit: int = DEFAULT_CONTEXT_LIMIT,
                    memory_budget: int = MEMORY_BUDGET, head: bytes = b"") -> Context:
    """The context from a blocking stream (any compression; head: bytes already read from its start): dest is an
    empty scratch directory; the tree appears in dest/root as it is materialized."""
    intake = ContextIntake(dest, limit, memory_budget)
    try:
        with decompressed(cast(BinaryIO, Prefixed(head, stream)) if head else stream) as plain:
            while chunk := plain.read(_READ):
                intake.feed(chunk)
        return intake.finish()
    except BaseException:
        intake.abort()
        raise


def compressed(head: bytes) -> bool:
    """Whether a body starting with head (6 bytes or more, or the whole body) is compressed."""
    return sniff(head) != "none"


# tar header fields -------------------------------------------------------------------------------------------

def _is_tar_header(block: bytes) -> bool:
    if block == bytes(_BLOCK):
        return True
    try:
        _check_sum(block)
    except Corrupt:
        return False
    return True


def _check_sum(block: bytes) -> None:
    want = _number(block[148:156])
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    if want == unsigned:
        return
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b > 127)
    if want != signed:
        raise Corrupt("the build context is not a valid tar archive (a header checksum does not match)")


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:          # base-256 (GNU, Go for big values)
        value = int.from_bytes(field, "big") & ~(0xFF << (8 * (len(field) - 1)))
        value |= (field[0] & 0x7F) << (8 * (len(field) - 1))
        if field[0] & 0x40:
            value -= 1 << (8 * len(field) - 1)
        return value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise Corrupt(f"the build context has a tar header with a bad number {field!r}") from None


def _cstr(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _name(block: bytes) -> str:
    name = _cstr(block[0:100])
    if block[257:265] == b"ustar\x0000":
        prefix = _cstr(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    return name


def _pax_records(payload: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(payload):
        if payload[pos] == 0:
            break
        space = payload.find(b" ", pos)
        if space < 0:
            raise Corrupt("the build context has a malformed PAX header")
        try:
            length = int(payload[pos:space])
        except ValueError:
            raise Corrupt("the build context has a malformed PAX header") from None
        if length <= space - pos or pos + length > len(payload):
            raise Corrupt("the build context has a malformed PAX header")
        record = payload[space + 1:pos + length - 1]
        key, sep, value = record.partition(b"=")
        if not sep:
            raise Corrupt("the build context has a malformed PAX header")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _pax_int(text: str) -> int:
    if not text.isdigit():
        raise Corrupt(f"the build context has a PAX size {text!r} that is not a number")
    return int(text)


def _clean(name: str) -> str:
    """A tar name relative to the context root, cleaned; '' is the root itself. Refuses names climbing out."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePath(f"the build context has entry {name!r}, which lies outside the context")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)
