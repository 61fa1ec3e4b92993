"""The narrow seams of the blob store (STYLE.md §4): ask for the side you use.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from berth.content.writer import BlobInfo, BlobWriter, Holder
from berth.oci.digest import Digest


class BlobReader(Protocol):
    def has(self, digest: Digest) -> bool: ...
    def size(self, digest: Digest) -> int: ...
    def open(self, digest: Digest) -> BinaryIO: ...
    def read_bytes(self, digest: Digest, limit: int = ...) -> bytes: ...


class BlobIngester(Protocol):
    def writer(self, ref: str, expected: Digest | None = None, expected_size: int | None = None, *,
               resumable: bool = False, wait: bool = True, lease: Holder | None = None) -> BlobWriter: ...

    def ingest(self, stream: BinaryIO, expected: Digest | None = None, expected_size: int | None = None, *,
               ref: str | None = None, lease: Holder | None = None) -> BlobInfo: ...

    def put_bytes(self, data: bytes, expected: Digest | None = None, *, lease: Holder | None = None) -> Digest: ...
