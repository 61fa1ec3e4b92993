"""Open a possibly compressed stream (gzip, zstd, xz, bzip2 or plain) as a plain byte stream, by magic bytes.

May import: berth.errors.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from berth.errors import Corrupt

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"))


class Prefixed(io.RawIOBase):
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def sniff(head: bytes) -> str:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


@contextmanager
def decompressed(stream: BinaryIO) -> Iterator[BinaryIO]:
    head = stream.read(6)
    raw = cast(BinaryIO, io.BufferedReader(Prefixed(head, stream), 1 << 20))
    kind = sniff(head)
    try:
        if kind == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield cast(BinaryIO, gz)
        elif kind == "zstd":
            import zstandard  # imported only when a zstd stream shows up
            with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as zs:
                yield cast(BinaryIO, zs)
        elif kind == "xz":
            with lzma.LZMAFile(raw) as xz:
                yield cast(BinaryIO, xz)
        elif kind == "bzip2":
            with bz2.BZ2File(raw) as bz:
                yield cast(BinaryIO, bz)
        else:
            yield raw
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise Corrupt(f"the {kind}-compressed stream is corrupt or truncated: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("zstd"):
            raise Corrupt(f"the zstd-compressed stream is corrupt: {exc}") from exc
        raise
