"""Content-addressed blob store: ingest -> verify size and digest -> atomic commit; leases and gc.

Blobs live at <root>/blobs/sha256/<hex>; unfinished writes at <root>/ingest/<ref>; leases at
<root>/leases/<name>; <root>/gc.lock orders lease appends against gc runs.

The rules callers follow:
- Use a ref per download or upload session (a digest string for "this blob": then concurrent pulls
  of one blob take turns on its lock and all but the first find `writer.exists`).
- Hold a Lease for the whole of an operation and pass it to writer()/ingest()/put_bytes(), or add()
  a digest to it before checking has(): gc keeps what a live lease holds, in any process, and
  expires the leases of dead processes.
- A resumable writer keeps its partial when closed uncommitted; `offset` says where to continue.

May import: berth.oci, berth.util, berth.errors. Never the engine or the runtime.
"""

from __future__ import annotations

from berth.content.leases import Lease
from berth.content.protocols import BlobIngester, BlobReader
from berth.content.store import MANIFEST_LIMIT, STALE_INGEST_SECONDS, BlobStore, GcResult
from berth.content.writer import BlobInfo, BlobWriter, Holder

__all__ = ["MANIFEST_LIMIT", "STALE_INGEST_SECONDS", "BlobInfo", "BlobIngester", "BlobReader", "BlobStore",
           "BlobWriter", "GcResult", "Holder", "Lease"]
