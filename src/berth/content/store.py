"""The content-addressed blob store on disk.

Blobs live at <root>/blobs/sha256/<hex>, unfinished writes at <root>/ingest/<ref>, leases at
<root>/leases/<name>. A blob becomes visible only by a link from a verified, fsynced ingest file,
so a crash leaves the old state or the new one; check() proves it.
May import: berth.oci, berth.util, berth.errors. Never the engine or the runtime.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from berth.content.leases import Lease, held_digests
from berth.content.writer import CHUNK, BlobInfo, BlobWriter, Holder, check_ref
from berth.errors import Corrupt, DigestMismatch, LimitExceeded, NotFound
from berth.oci.digest import Digest
from berth.util.locks import file_lock

MANIFEST_LIMIT = 4 << 20
STALE_INGEST_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class GcResult:
    removed: tuple[Digest, ...]
    bytes: int
    ingests_removed: tuple[str, ...] = ()
    leases_expired: tuple[str, ...] = ()


class BlobStore:
    """Blobs by sha256 digest under one root directory. Safe to share between threads and processes."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"
        self._ingest = root / "ingest"
        self._leases = root / "leases"
        self._gc_lock = root / "gc.lock"
        self._clock = clock
        for d in (self._blobs, self._ingest, self._leases):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- writing ------------------------------------------------------------------------------------

    def writer(self, ref: str, expected: Digest | None = None, expected_size: int | None = None, *,
               resumable: bool = False, wait: bool = True, lease: Holder | None = None) -> BlobWriter:
        """Open the ingest `ref` (waiting for its current writer unless wait=False: then Unavailable).

        With `lease`, the expected and the committed digest are added to it before they are looked
        for or linked, so gc cannot remove them under the caller.
        """
        check_ref(ref)
        return BlobWriter(self._blobs, self._ingest / ref, ref, expected, expected_size, resumable, wait, lease)

    def ingest(self, stream: BinaryIO, expected: Digest | None = None, expected_size: int | None = None, *,
               ref: str | None = None, lease: Holder | None = None) -> BlobInfo:
        """Copy stream (from its current position to EOF) into the store.

        With an expected digest the ref defaults to that digest, so concurrent ingests of one blob
        take turns and all but the first find it present without reading their stream.
        """
        if ref is None:
            ref = str(expected) if expected is not None else f"anon-{uuid.uuid4().hex}"
        with self.writer(ref, expected, expected_size, lease=lease) as w:
            if w.exists:
                return w.commit()
            if w.offset:
                w.truncate(0)  # the stream starts at byte 0 of the blob, whatever a crash left here
            w.write_from(stream)
            return w.commit()

    def put_bytes(self, data: bytes, expected: Digest | None = None, *, lease: Holder | None = None) -> Digest:
        actual = Digest.of(data)
        if expected is not None and expected != actual:
            raise DigestMismatch(f"expected {expected}, got {actual} ({len(data)} bytes)")
        with self.writer(str(actual), actual, len(data), lease=lease) as w:
            if not w.exists:
                w.write(data)
            return w.commit().digest

    def partial_size(self, ref: str) -> int:
        """Bytes an unfinished ingest has so far (an upload's status), without waiting for its writer."""
        try:
            return os.stat(self._ingest / check_ref(ref)).st_size
        except FileNotFoundError:
            raise NotFound(f"no ingest in progress under ref {ref!r}") from None

    # -- reading ------------------------------------------------------------------------------------

    def path(self, digest: Digest) -> Path:
        """Where the blob is, for zero-copy sendfile; NotFound when it is not there."""
        p = self._blobs / digest.hex
        if not p.exists():
            raise NotFound(f"blob {digest} not found")
        return p

    def has(self, digest: Digest) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self._blobs / digest.hex).st_mode)
        except FileNotFoundError:
            return False

    def size(self, digest: Digest) -> int:
        try:
            st = os.lstat(self._blobs / digest.hex)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None
        if not stat.S_ISREG(st.st_mode):
            raise Corrupt(f"blob {digest} is not a regular file")
        return st.st_size

    def info(self, digest: Digest) -> BlobInfo:
        return BlobInfo(digest, self.size(digest))

    def open(self, digest: Digest) -> BinaryIO:
        try:
            # O_NONBLOCK: a planted FIFO must not hang the reader (no effect on a regular file)
            fd = os.open(self._blobs / digest.hex, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # blobs are only ever linked in by commit: a symlink is tampering
                raise Corrupt(f"blob {digest} is a symbolic link, not content") from exc
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Corrupt(f"blob {digest} is not a regular file")
        return os.fdopen(fd, "rb")

    def read_bytes(self, digest: Digest, limit: int = MANIFEST_LIMIT) -> bytes:
        """The whole blob, verified against its digest; LimitExceeded when it is over limit bytes."""
        with self.open(digest) as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise LimitExceeded(f"blob {digest} is {size} bytes, over the limit of {limit} bytes")
            data = f.read(limit + 1)
        if len(data) > limit:
            raise LimitExceeded(f"blob {digest} grew over the limit of {limit} bytes while read")
        if Digest.of(data) != digest:
            raise Corrupt(f"blob {digest} is corrupt on disk: its content hashes to {Digest.of(data)}")
        return data

    def walk(self) -> Iterator[Digest]:
        """Every blob's digest (in no particular order); stray files are skipped (check() names them)."""
        with os.scandir(self._blobs) as it:
            for entry in it:
                if Digest.is_valid("sha256:" + entry.name) and entry.is_file(follow_symlinks=False):
                    yield Digest("sha256", entry.name)

    # -- removing -----------------------------------------------------------------------------------

    def delete(self, digest: Digest) -> None:
        try:
            os.unlink(self._blobs / digest.hex)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def lease(self, name: str | None = None) -> Lease:
        """A new lease (a context manager); Conflict if a live holder has this name already."""
        return Lease(self._leases, self._gc_lock, name)

    def gc(self, roots: Iterable[Digest], stale_after: float = STALE_INGEST_SECONDS) -> GcResult:
        """Delete blobs neither in roots nor held by a live lease, and ingest partials unused for
        stale_after seconds. Never touches an ingest whose writer is alive (its flock is held)."""
        keep = set(roots)
        removed: list[Digest] = []
        freed = 0
        with file_lock(self._gc_lock):
            held, expired = held_digests(self._leases)
            keep |= held
            for digest in list(self.walk()):
                if digest in keep:
                    continue
                try:
                    size = os.stat(self._blobs / digest.hex).st_size
                    os.unlink(self._blobs / digest.hex)
                except FileNotFoundError:
                    continue
                removed.append(digest)
                freed += size
            ingests = self._collect_ingests(stale_after)
        return GcResult(tuple(sorted(removed)), freed, tuple(ingests), tuple(expired))

    def _collect_ingests(self, stale_after: float) -> list[str]:
        out: list[str] = []
        now = self._clock()
        for name in sorted(os.listdir(self._ingest)):
            path = self._ingest / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue  # gone meanwhile, or not a partial (check() reports that)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                st = os.fstat(fd)
                try:
                    same = os.stat(path).st_ino == st.st_ino
                except FileNotFoundError:
                    same = False  # committed or dropped by its writer between our open and our lock
                if not stat.S_ISREG(st.st_mode) or not same:
                    continue
                # nlink > 1: left by a crash between commit's link and unlink; the blob is safe
                if st.st_nlink > 1 or now - st.st_mtime >= stale_after:
                    path.unlink(missing_ok=True)
                    out.append(name)
            finally:
                os.close(fd)
        return out

    # -- checking -----------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found: blobs whose content does not hash to their name, and stray files."""
        problems: list[str] = []
        for top in sorted(os.listdir(self._blobs.parent)):
            if top != "sha256":
                problems.append(f"stray entry {self._blobs.parent / top}")
        with os.scandir(self._blobs) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = Path(entry.path)
            if not Digest.is_valid("sha256:" + entry.name):
                problems.append(f"stray entry {path} (not a sha256 hex name)")
                continue
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    problems.append(f"blob {path} is not a regular file")
                    continue
                actual = _hash_file(path)
            except FileNotFoundError:
                continue  # deleted (gc) while the check ran
            if actual != entry.name:
                problems.append(f"blob sha256:{entry.name} is corrupt: its content hashes to sha256:{actual}")
        for name in sorted(os.listdir(self._ingest)):
            if not os.path.isfile(self._ingest / name) or os.path.islink(self._ingest / name):
                problems.append(f"stray entry {self._ingest / name} (not an ingest file)")
        return problems


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()
