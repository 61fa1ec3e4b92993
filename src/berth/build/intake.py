"""The build context as it arrives: a tar stream (plain, gzip, bzip2, xz or zstd) unpacked into an empty
directory by berth's own extractor (no name climbs out, no symlink is followed out, hardlinks stay inside),
with a size limit on the uncompressed bytes.

May import: berth.images.compression, berth.snapshots, berth.errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from berth.errors import LimitExceeded
from berth.images.compression import decompressed
from berth.snapshots.apply import Limits, apply_layer
from berth.snapshots.stream import Compression

DEFAULT_CONTEXT_LIMIT = 8 << 30


def receive_context(stream: BinaryIO, dest: Path, limit: int = DEFAULT_CONTEXT_LIMIT) -> int:
    """Unpack the context into dest (an empty directory); returns its size in bytes."""
    try:
        with decompressed(stream) as plain:
            result = apply_layer(plain, dest, compression=Compression.NONE,
                                 limits=Limits(max_bytes=limit), label="build context", same_owner=True)
    except LimitExceeded as exc:
        raise LimitExceeded(f"the build context is larger than berth's limit of {limit} bytes: leave large files "
                            f"out of it with .dockerignore ({exc})") from exc
    return result.size
