"""Reading a layer blob as an uncompressed tar stream: decompression, the diff_id hash, limits.

A layer arrives gzip-, zstd- or un-compressed. `LayerReader` turns it into the uncompressed tar
bytes in chunks of about 1 MiB, hashes every byte as it passes (the diff_id covers the whole
stream, trailing zero blocks and padding included), counts them against a size limit, and
offers the forward-only file interface that tarfile's header parser needs (read, tell, seek).
File data never goes through `read`: `copy_to` writes the buffered chunks straight to an fd.
Reading, decompressing and hashing run a few chunks ahead in a helper thread (`_Pump`).

May import: berth.oci, berth.util, berth.errors, and zstandard.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import zlib
from collections.abc import Callable
from enum import StrEnum
from typing import Any, BinaryIO

import zstandard

from berth.errors import Corrupt, LimitExceeded, Unavailable
from berth.oci.digest import Digest

# ISA-L's inflate is ~1.5x zlib's (363 vs 232 MB/s measured here) and gzip is the common layer
# format; its API is zlib's. Without isal installed, zlib does the same work more slowly.
_inflate: Any = zlib
try:
    from isal import isal_zlib

    _inflate = isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    pass
_INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate.error)

CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def detect_compression(head: bytes) -> Compression:
    """The compression of a stream, from its first bytes (magic numbers); plain tar otherwise."""
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


class _Source:
    """The compressed blob, read in CHUNK pieces, with read errors turned into berth's kind."""

    def __init__(self, stream: BinaryIO, label: str, head: bytes) -> None:
        self._stream, self._label, self._head = stream, label, head

    def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        try:
            return self._stream.read(n)
        except OSError as exc:
            raise Unavailable(f"reading layer {self._label} failed: {exc}") from exc


def _plain_chunks(src: _Source) -> Callable[[], bytes]:
    return src.read


class _Gunzip:
    """gzip decompression in bounded chunks.

    Concatenated gzip members are one stream (RFC 1952 §2.2; Go's reader, hence Docker, accepts
    them). max_length bounds each output chunk, so a small bomb cannot allocate gigabytes at once.
    """

    def __init__(self, src: _Source, label: str) -> None:
        self._src, self._label = src, label
        self._d = _inflate.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._started = False

    def __call__(self) -> bytes:
        while True:
            if self._d.eof:
                rest = self._d.unused_data + self._pending
                if not rest:
                    rest = self._src.read()
                    if not rest:
                        return b""
                self._d = _inflate.decompressobj(16 + zlib.MAX_WBITS)
                self._pending = rest
            elif not self._pending:
                self._pending = self._src.read()
                if not self._pending:
                    if not self._started:
                        return b""          # an empty blob is an empty stream, as Go's reader sees it
                    raise Corrupt(f"layer {self._label}: gzip stream is truncated")
            self._started = True
            out: bytes = self._d.decompress(self._pending, CHUNK)
            self._pending = self._d.unconsumed_tail
            if out:
                return out


class _ZstdFrames:
    """Follows zstd frame boundaries in the compressed bytes (RFC 8878 §3.1).

    The zstandard stream reader returns a clean end of stream when its input stops in the middle
    of a frame; walking the frame and block headers (cheap: one step per block of up to 128 KiB)
    tells a truncated stream from a complete one.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._state = "magic"
        self._hdr = b""
        self._skip = 0
        self._checksum = False

    def _need(self) -> int:
        return {"magic": 4, "fhd": 1, "block": 3, "skipsize": 4}[self._state]

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                i += k
                self._skip -= k
                continue
            take = self._need() - len(self._hdr)
            self._hdr += data[i:i + take]
            i += take
            if len(self._hdr) == self._need():
                hdr, self._hdr = self._hdr, b""
                self._step(hdr)

    def _step(self, hdr: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(hdr, "little")
            if magic == 0xFD2FB528:
                self._state = "fhd"
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state = "skipsize"
            else:
                raise Corrupt(f"layer {self._label}: zstd stream has an invalid frame header")
        elif self._state == "skipsize":
            self._skip, self._state = int.from_bytes(hdr, "little"), "magic"
        elif self._state == "fhd":
            fhd = hdr[0]
            single = (fhd >> 5) & 1
            self._checksum = bool((fhd >> 2) & 1)
            fcs = (single, 2, 4, 8)[fhd >> 6]
            self._skip = (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
            self._state = "block"
        else:  # block header: last flag, type, size
            b = int.from_bytes(hdr, "little")
            kind, size = (b >> 1) & 3, b >> 3
            if kind == 3:
                raise Corrupt(f"layer {self._label}: zstd stream has a reserved block type")
            self._skip = 1 if kind == 1 else size
            if b & 1:
                self._skip += 4 if self._checksum else 0
                self._state = "magic"

    def complete(self) -> bool:
        return self._state == "magic" and not self._hdr and not self._skip


def _zstd_chunks(src: _Source, label: str) -> Callable[[], bytes]:
    frames = _ZstdFrames(label)

    class _Tee:
        def read(self, n: int = CHUNK) -> bytes:
            data = src.read(max(n, CHUNK))
            frames.feed(data)
            return data

    # stream_reader only needs read(); the stubs ask for a full IO.
    reader = zstandard.ZstdDecompressor().stream_reader(
        _Tee(), read_size=CHUNK, read_across_frames=True)  # type: ignore[arg-type]

    def next_chunk() -> bytes:
        out: bytes = reader.read(CHUNK)
        if not out and not frames.complete():
            raise Corrupt(f"layer {label}: zstd stream is truncated")
        return out

    return next_chunk


class _Pump(threading.Thread):
    """Reads, decompresses and hashes the stream a few chunks ahead of the extractor.

    zlib, zstandard, hashlib and read(2) release the GIL, so on two cores this work overlaps
    with the extractor's file creation. The queue is short: a bomb is not inflated far ahead.
    """

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        super().__init__(name="berth-layer-read", daemon=True)
        self.hash = hashlib.sha256()
        self._next = next_chunk
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=4)
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                chunk = self._next()
                self.hash.update(chunk)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the extractor's thread by get()
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._halt.set()
        # Bounded: a read blocked on a stalled network stream must not hold up the error path;
        # the thread then ends with that read (it is a daemon thread, touching nothing of ours).
        self.join(timeout=5)


class LayerReader:
    """The uncompressed tar stream of one layer: hashed, counted, limited, readable forward only.

    Close it (or use it as a context manager): a helper thread reads ahead.
    """

    def __init__(self, stream: BinaryIO, compression: Compression | None, label: str, max_bytes: int,
                 max_record: int = CHUNK) -> None:
        head = b""
        while len(head) < 4:                # raw streams may return fewer bytes than asked
            more = stream.read(4 - len(head))
            if not more:
                break
            head += more
        kind = compression if compression is not None else detect_compression(head)
        src = _Source(stream, label, head)
        self.compression = kind
        self._label, self._max_bytes, self._max_record = label, max_bytes, max_record
        self._next: Callable[[], bytes] = (
            _Gunzip(src, label) if kind is Compression.GZIP
            else _zstd_chunks(src, label) if kind is Compression.ZSTD
            else _plain_chunks(src))
        self._pump = _Pump(self._next)
        self._pump.start()
        self._buf = b""
        self._pos = 0           # read position inside _buf
        self._base = 0          # stream offset of _buf[0]
        self._total = 0         # bytes pulled from the decompressor so far
        self._eof = False

    # -- the part tarfile uses ---------------------------------------------------------------
    def tell(self) -> int:
        return self._base + self._pos

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._max_record:
            # Only headers, PAX records and GNU long names are read this way; file data is copied.
            raise LimitExceeded(f"layer {self._label}: a tar header record of {n} bytes exceeds the "
                                f"limit of {self._max_record} bytes")
        if len(self._buf) - self._pos >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        self._pos = len(self._buf)
        while have < n and self._fill():
            take = min(n - have, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            have += take
        return b"".join(parts)

    def peek(self, n: int) -> bytes:
        """The next n bytes (fewer at the end of the stream), without consuming them."""
        while len(self._buf) - self._pos < n and self._fill():
            pass
        return self._buf[self._pos:self._pos + n]

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.tell() + offset
        if target < self.tell():
            raise Corrupt(f"layer {self._label}: tar member offsets go backwards (at byte {self.tell()})")
        self.skip(target - self.tell())
        return self.tell()

    # -- the part the extractor uses ---------------------------------------------------------
    def skip(self, n: int) -> None:
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise Corrupt(f"layer {self._label}: tar stream is truncated")
                continue
            k = min(n, avail)
            self._pos += k
            n -= k

    def copy_to(self, fd: int, n: int) -> None:
        """Write the next n stream bytes to fd, straight from the decompressed chunks."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise Corrupt(f"layer {self._label}: tar stream is truncated inside a file")
                continue
            k = min(n, avail)
            view = memoryview(self._buf)[self._pos:self._pos + k]
            while view:
                view = view[os.write(fd, view):]
            self._pos += k
            n -= k

    def drain(self) -> bytes:
        """Read to the end of the stream (so the hash covers it); returns up to its first 1024 bytes."""
        head = self._buf[self._pos:self._pos + 1024]
        self._pos = len(self._buf)
        while self._fill():
            if len(head) < 1024:
                head += self._buf[:1024 - len(head)]
            self._pos = len(self._buf)
        return head

    @property
    def size(self) -> int:
        return self._total

    def diff_id(self) -> Digest:
        """The sha256 of the whole stream; valid once drain() reached its end."""
        if not self._eof:
            raise RuntimeError("diff_id asked before the end of the layer stream")
        self._pump.join()
        return Digest("sha256", self._pump.hash.hexdigest())

    def close(self) -> None:
        self._pump.stop()

    def __enter__(self) -> LayerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> bool:
        """Append the next chunk to what is left of the buffer; False at the end of the stream."""
        if self._eof:
            return False
        try:
            chunk = self._pump.get()
        except zstandard.ZstdError as exc:
            raise Corrupt(f"layer {self._label}: zstd stream is corrupt: {exc}") from exc
        except _INFLATE_ERRORS as exc:
            raise Corrupt(f"layer {self._label}: gzip stream is corrupt: {exc}") from exc
        if not chunk:
            self._eof = True
            return False
        self._total += len(chunk)
        if self._total > self._max_bytes:
            raise LimitExceeded(f"layer {self._label}: uncompressed size exceeds the limit of "
                                f"{self._max_bytes} bytes")
        rest = self._buf[self._pos:]         # kept only by peek(), when a header spans two chunks
        self._base += self._pos
        self._buf = rest + chunk if rest else chunk
        self._pos = 0
        return True
