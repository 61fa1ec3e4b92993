"""Content-addressed blob store: ingest -> verify size and digest -> atomic commit; leases and gc.

Blobs live at <root>/blobs/sha256/<hex>; unfinished writes at <root>/ingest/<ref>.
May import: berth.oci, berth.util, berth.errors. Never the engine or the runtime.
"""

from __future__ import annotations

from berth.content.leases import Lease
from berth.content.protocols import BlobIngester, BlobReader
from berth.content.store import MANIFEST_LIMIT, STALE_INGEST_SECONDS, BlobStore, GcResult
from berth.content.writer import BlobInfo, BlobWriter, Holder

__all__ = ["MANIFEST_LIMIT", "STALE_INGEST_SECONDS", "BlobInfo", "BlobIngester", "BlobReader", "BlobStore",
           "BlobWriter", "GcResult", "Holder", "Lease"]
