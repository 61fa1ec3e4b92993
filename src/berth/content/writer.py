"""Writing one blob: a locked partial file under ingest/, hashed as it streams, verified, then linked into blobs/.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

from berth.errors import Conflict, Corrupt, DigestMismatch, InvalidArgument, Unavailable
from berth.oci.digest import Digest
from berth.util.atomic import fsync_dir
from berth.util.locks import lock_path

if TYPE_CHECKING:
    from hashlib import _Hash

CHUNK = 1 << 20
PARALLEL_HASH_MIN = 256 << 10
BLOB_MODE = 0o444
PARTIAL_MODE = 0o600

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a committed blob is: its digest and size in bytes (a descriptor without a media type)."""

    digest: Digest
    size: int


class Holder(Protocol):
    """Something that keeps a blob from garbage collection (a Lease)."""

    def add(self, digest: Digest) -> None: ...


def check_ref(ref: str) -> str:
    if not _REF.fullmatch(ref):
        raise InvalidArgument(f"invalid ingest ref {ref!r}: expected 1-200 characters of [A-Za-z0-9._:@+=-], "
                              "not starting with a punctuation mark")
    return ref


class BlobWriter:
    """One ingest in progress; use it as a context manager (BlobStore.writer opens it).

    The partial file at ingest/<ref> is flock-held for as long as the writer is open, so another
    writer of the same ref waits (or gets Unavailable) and gc leaves it alone. `offset` is how many
    bytes the partial already has: a resumable ingest continues from there (an HTTP Range request).

    Leaving the block without commit() drops the partial unless the writer is `resumable`; a
    DigestMismatch always drops it, since those bytes can never become the expected blob.
    """

    def __init__(self, blobs_dir: Path, ingest_path: Path, ref: str, expected: Digest | None,
                 expected_size: int | None, resumable: bool, wait: bool, holder: Holder | None) -> None:
        if expected_size is not None and expected_size < 0:
            raise InvalidArgument(f"expected size of ingest {ref!r} is negative: {expected_size}")
        self.ref = ref
        self.expected = expected
        self.expected_size = expected_size
        self.resumable = resumable
        self._blobs_dir = blobs_dir
        self._path = ingest_path
        self._holder = holder
        self._pool: ThreadPoolExecutor | None = None
        self._committed: BlobInfo | None = None
        self._closed = True  # until the ref is locked
        if holder is not None and expected is not None:
            holder.add(expected)  # before looking for it, so gc cannot take it between the look and the use
        try:
            fd = lock_path(ingest_path, wait=wait, mode=PARTIAL_MODE)
        except PermissionError:
            # Not root, and the name is a read-only leftover link of a committed blob (see _open_partial).
            if os.stat(ingest_path).st_nlink < 2:
                raise
            ingest_path.unlink(missing_ok=True)
            fd = lock_path(ingest_path, wait=wait, mode=PARTIAL_MODE)
        if fd is None:
            raise Unavailable(f"ingest {ref!r} is being written by another writer; try again later")
        self._fd = fd
        try:
            self._open_partial()
        except BaseException:
            try:
                if os.fstat(self._fd).st_size == 0:
                    os.unlink(self._path)  # ours, made by lock_path; a partial with data stays for its ref
            finally:
                os.close(self._fd)
            raise
        self._closed = False

    def _open_partial(self) -> None:
        if os.fstat(self._fd).st_nlink > 1:
            # A crash between linking into blobs/ and unlinking here: this inode IS a committed blob.
            os.unlink(self._path)
            fd = lock_path(self._path, wait=True, mode=PARTIAL_MODE)
            assert fd is not None
            os.close(self._fd)
            self._fd = fd
        self._offset = os.lseek(self._fd, 0, os.SEEK_END)
        # A fresh partial is hashed as it streams; a resumed one is hashed from disk at commit, so that
        # a registry upload taking many PATCH requests does not re-read the whole file on every one.
        self._hasher: _Hash | None = hashlib.sha256() if self._offset == 0 else None
        if self.expected is not None:
            try:
                size = os.stat(self._blobs_dir / self.expected.hex).st_size
            except FileNotFoundError:
                pass
            else:
                if self.expected_size is not None and size != self.expected_size:
                    raise Corrupt(f"blob {self.expected} is {size} bytes, not the {self.expected_size} expected")
                self._committed = BlobInfo(self.expected, size)
                return
        if self.expected_size is not None and self._offset > self.expected_size:
            self._truncate(0)  # a leftover longer than the blob can be: not a prefix of it

    # -- state --------------------------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Bytes written so far, including those of a resumed partial."""
        return self._offset

    @property
    def exists(self) -> bool:
        """True when the expected blob is in the store already (maybe another writer just committed it).

        Then nothing needs writing: commit() returns it at once.
        """
        return self._committed is not None

    @property
    def path(self) -> Path:
        return self._path

    def _check_open(self) -> None:
        if self._closed:
            raise Conflict(f"ingest {self.ref!r} is closed")
        if self._committed is not None:
            raise Conflict(f"ingest {self.ref!r} is committed already as {self._committed.digest}")

    # -- writing ------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        view = memoryview(data).cast("B")
        if self.expected_size is not None and self._offset + len(view) > self.expected_size:
            raise Corrupt(f"ingest {self.ref!r} got more than its expected {self.expected_size} bytes "
                          f"({self._offset} + {len(view)})")
        total = len(view)
        if self._hasher is not None and total >= PARALLEL_HASH_MIN:
            # hashlib and os.write both release the GIL: hash on a second core while this one writes
            hashed = self._hash_pool().submit(self._hasher.update, view)
            try:
                self._write_all(view)
            finally:
                hashed.result()  # the caller may reuse its buffer once write() returns
        else:
            if self._hasher is not None:
                self._hasher.update(view)
            self._write_all(view)
        self._offset += total
        return total

    def write_from(self, stream: BinaryIO) -> int:
        """Copy stream to its EOF; return the bytes copied.

        Reading and writing chunk k+1 overlap hashing chunk k (two buffers take turns), which is
        what makes an ingest about as fast as the slower of sha256 and the copy, not their sum.
        """
        self._check_open()
        readinto = getattr(stream, "readinto", None)
        bufs = (bytearray(CHUNK), bytearray(CHUNK))
        total, turn = 0, 0
        pending: Future[None] | None = None
        try:
            while True:
                if readinto is not None:
                    n = readinto(bufs[turn])  # this buffer's hash finished before the previous submit
                    view = memoryview(bufs[turn])[:n] if n else memoryview(b"")
                else:
                    view = memoryview(stream.read(CHUNK))
                if not view:
                    break
                if self.expected_size is not None and self._offset + len(view) > self.expected_size:
                    raise Corrupt(f"ingest {self.ref!r} got more than its expected {self.expected_size} bytes")
                self._write_all(view)
                if pending is not None:
                    pending.result()
                    pending = None
                if self._hasher is not None:
                    pending = self._hash_pool().submit(self._hasher.update, view)
                self._offset += len(view)
                total += len(view)
                turn ^= 1
        finally:
            if pending is not None:
                pending.result()
        return total

    def _hash_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="berth-ingest-hash")
        return self._pool

    def _write_all(self, view: memoryview) -> None:
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except BaseException as exc:
            # Part of the chunk may have landed (ENOSPC, a signal): count what the file really has,
            # and hash it from disk at commit rather than trust a hasher that missed those bytes.
            self._offset = os.lseek(self._fd, 0, os.SEEK_END)
            self._hasher = None
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # a partial kept for resuming would go on holding the space the disk lacks (moby#12195,
                # hub-feedback#922): closing drops it, and the next attempt starts over
                self.resumable = False
            raise

    def truncate(self, size: int = 0) -> None:
        """Cut the partial back to size bytes (0: start over), e.g. when a server ignores a Range request."""
        self._check_open()
        if not 0 <= size <= self._offset:
            raise InvalidArgument(f"cannot truncate ingest {self.ref!r} of {self._offset} bytes to {size}")
        self._truncate(size)

    def _truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.lseek(self._fd, size, os.SEEK_SET)
        self._offset = size
        self._hasher = hashlib.sha256() if size == 0 else None

    def _digest_on_disk(self) -> Digest:
        hasher = hashlib.sha256()
        buf = bytearray(CHUNK)
        pos = 0
        while True:
            n = os.preadv(self._fd, [buf], pos)
            if n == 0:
                break
            hasher.update(memoryview(buf)[:n])
            pos += n
        if pos != self._offset:
            raise Corrupt(f"ingest {self.ref!r} has {pos} bytes on disk, not the {self._offset} it wrote")
        return Digest("sha256", hasher.hexdigest())

    def commit(self) -> BlobInfo:
        """Verify size and digest, make the partial durable and link it into blobs/; idempotent.

        A blob of the same digest being there already is success: the partial is dropped.
        """
        if self._committed is not None:
            return self._committed
        self._check_open()
        if self.expected_size is not None and self._offset != self.expected_size:
            raise Corrupt(f"ingest {self.ref!r} has {self._offset} bytes, expected {self.expected_size}")
        actual = Digest("sha256", self._hasher.hexdigest()) if self._hasher is not None else self._digest_on_disk()
        if self.expected is not None and actual != self.expected:
            self._discard()
            raise DigestMismatch(f"ingest {self.ref!r}: expected {self.expected}, got {actual} "
                                 f"({self._offset} bytes); the partial was dropped")
        if self._holder is not None:
            self._holder.add(actual)  # waits for a running gc, which may be deleting an old copy right now
        os.fchmod(self._fd, BLOB_MODE)
        try:
            os.fsync(self._fd)
            os.link(self._path, self._blobs_dir / actual.hex)
        except FileExistsError:
            pass  # the same content is there already: one copy is enough
        except BaseException:
            os.fchmod(self._fd, PARTIAL_MODE)  # stays a writable partial for a retry
            raise
        else:
            fsync_dir(self._blobs_dir)
        self._committed = BlobInfo(actual, self._offset)
        self._release(keep=False)
        return self._committed

    # -- ending -------------------------------------------------------------------------------------

    def abort(self) -> None:
        """Drop the partial and release the ref."""
        if not self._closed:
            self._discard()

    def close(self) -> None:
        """Release the ref: a resumable partial stays for a later writer, any other is dropped."""
        if not self._closed:
            self._release(keep=self.resumable and self._committed is None)

    def _discard(self) -> None:
        self._release(keep=False)

    def _release(self, keep: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        try:
            if not keep:
                # unlink while still holding the lock: a waiter then sees a new inode and starts fresh
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    pass
        finally:
            os.close(self._fd)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

