"""Leases: named, on-disk sets of digests that garbage collection must keep while their holder lives.

A lease is the file <root>/leases/<name>, one digest a line, flock-held by its holder. Another process
(a second daemon, `berth system prune`) sees it; when the holder dies the kernel drops the flock, and
the next gc finds the lease lockable and expires it. Appends and gc exclude each other through
<root>/gc.lock (shared for an append, exclusive for a gc run), so a digest added before a gc starts is
seen by it, and one added while it runs waits until it is done.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import uuid
from pathlib import Path
from types import TracebackType

from berth.errors import Conflict, InvalidArgument
from berth.oci.digest import Digest
from berth.util.locks import file_lock, lock_path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}")


class Lease:
    """Keeps the digests added to it from gc until released (use it as a context manager).

    Add a digest before relying on the blob being there (check has() after add()), or pass the lease
    to BlobStore.writer/ingest so a committed blob is covered from the moment it appears.
    """

    def __init__(self, leases_dir: Path, gc_lock: Path, name: str | None = None) -> None:
        name = name if name is not None else f"lease-{uuid.uuid4().hex}"
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid lease name {name!r}: expected 1-200 characters of [A-Za-z0-9._:@+=-]")
        self.name = name
        self._path = leases_dir / name
        self._gc_lock = gc_lock
        self._digests: set[Digest] = set()
        fd = lock_path(self._path, wait=False)
        if fd is None:
            raise Conflict(f"lease {name!r} is held by another live operation; choose another name")
        os.ftruncate(fd, 0)  # a dead holder's digests are not ours to keep
        self._fd: int | None = fd

    @property
    def digests(self) -> frozenset[Digest]:
        return frozenset(self._digests)

    @property
    def active(self) -> bool:
        return self._fd is not None

    def add(self, digest: Digest) -> None:
        if self._fd is None:
            raise Conflict(f"lease {self.name!r} is released; it cannot hold {digest}")
        if digest in self._digests:
            return
        line = f"{digest}\n".encode()
        with file_lock(self._gc_lock, shared=True):
            written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"short write to lease {self._path}")
        self._digests.add(digest)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self._path.unlink(missing_ok=True)  # while still locked: a scanner never sees it half-gone
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.release()


def held_digests(leases_dir: Path) -> tuple[set[Digest], list[str]]:
    """Digests held by live leases, and the names of dead ones, which are removed on the way.

    The caller holds the gc lock exclusively, so no lease is being appended to meanwhile.
    """
    held: set[Digest] = set()
    expired: list[str] = []
    try:
        names = sorted(os.listdir(leases_dir))
    except FileNotFoundError:
        return held, expired
    for name in names:
        path = leases_dir / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # released meanwhile, or a symlink: not a lease
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue  # not a lease file; never unlink what we did not make
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.update(_parse(_read_all(fd)))
                continue
            # Lockable: its holder is gone (or it is being created this instant: the creator then
            # finds the inode unlinked and makes a new one, see lock_path).
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)
                    expired.append(name)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
    return held, expired


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    pos = 0
    while chunk := os.pread(fd, 1 << 16, pos):
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> set[Digest]:
    out: set[Digest] = set()
    for line in raw.decode("ascii", "replace").splitlines():
        if Digest.is_valid(line):
            out.add(Digest.parse(line))
    return out
