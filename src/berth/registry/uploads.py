"""Upload sessions in progress: their open, hashing blob writers kept between requests, and their expiry.

A chunked upload is many requests (POST, PATCH..., PUT). Keeping the session's writer open between them keeps
its running sha256, so the final PUT needs no second pass over the data; a server restart (or the writer being
closed to stay under `max_open`) loses only that shortcut: the writer reopens the partial and hashes it from
disk. Sessions idle longer than `ttl` are dropped with their partial.
May import: berth.content, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from berth.errors import Unavailable
from berth.registry.names import UploadId
from berth.registry.storage import UploadExpiry, UploadSession, UploadWriter

DEFAULT_UPLOAD_TTL = 3600.0
MAX_OPEN_WRITERS = 256


class _Uploads(UploadExpiry, Protocol):
    def open_upload(self, upload: UploadId) -> UploadWriter: ...
    def upload_offset(self, upload: UploadId) -> int: ...


@dataclass(slots=True)
class _Open:
    writer: UploadWriter
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    used: float = 0.0


class UploadTable:
    def __init__(self, storage: _Uploads, ttl: float = DEFAULT_UPLOAD_TTL,
                 clock: Callable[[], float] = time.time, max_open: int = MAX_OPEN_WRITERS) -> None:
        self._storage = storage
        self._max_open = max_open
        self._ttl = ttl
        self._clock = clock
        self._open: dict[UploadId, _Open] = {}

    @contextlib.asynccontextmanager
    async def writer(self, session: UploadSession) -> AsyncIterator[UploadWriter]:
        """The session's writer, held exclusively for one request (a second concurrent request waits)."""
        entry = self._open.get(session.id)
        if entry is None:
            self._make_room()
            entry = self._open[session.id] = _Open(self._storage.open_upload(session.id), used=self._clock())
        async with entry.lock:
            if self._open.get(session.id) is not entry:
                raise Unavailable(f"upload {session.id} ended while this request waited for it")
            entry.used = self._clock()
            yield entry.writer
            entry.used = self._clock()
        self._storage.touch_upload(session.id)

    def _make_room(self) -> None:
        """Keep at most max_open writers (each holds a file descriptor): close the least recently used idle
        ones. Their partials stay (resumable); a later request reopens them and hashes from disk."""
        idle = sorted((e.used, upload.value) for upload, e in self._open.items() if not e.lock.locked())
        for _, upload in idle[:max(0, len(self._open) - self._max_open + 1)]:
            self._open.pop(UploadId(upload)).writer.close()

    @property
    def open_writers(self) -> int:
        return len(self._open)

    def peek_offset(self, session: UploadSession) -> int:
        entry = self._open.get(session.id)
        return entry.writer.offset if entry is not None else self._storage.upload_offset(session.id)

    def finish(self, session: UploadSession, abort: bool) -> None:
        """Forget the session: its writer is closed (aborted: the partial is dropped) and its file removed."""
        entry = self._open.pop(session.id, None)
        if entry is not None:
            if abort:
                entry.writer.abort()
            else:
                entry.writer.close()
        self._storage.drop_upload(session.id)

    def expire(self) -> list[UploadId]:
        """Drop sessions idle longer than the ttl, open here or left on disk by an earlier server."""
        now = self._clock()
        gone: list[UploadId] = []
        for upload, entry in list(self._open.items()):
            if not entry.lock.locked() and now - entry.used > self._ttl:
                self._open.pop(upload, None)
                entry.writer.abort()
                self._storage.drop_upload(upload)
                gone.append(upload)
        for upload, touched in list(self._storage.upload_sessions()):
            if upload not in self._open and upload not in gone and now - touched > self._ttl:
                self._storage.drop_upload(upload)
                gone.append(upload)
        return gone

    def close_all(self) -> None:
        """At shutdown: keep the partials (resumable), release their locks."""
        for entry in self._open.values():
            entry.writer.close()
        self._open.clear()
