"""Bridges between aiohttp's async streams and the engine's blocking file-like interfaces.

The engine works with BinaryIO; handlers run it in a worker thread and hand it one of these.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

CHUNK = 1 << 20
T = TypeVar("T")


async def blocking(fn: Callable[[], T]) -> T:
    """Run a blocking engine call on the daemon's worker threads."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def frame(stream: str, data: bytes) -> bytes:
    """Docker's stream framing for non-tty output: [1 stdout | 2 stderr, 0, 0, 0, uint32 BE length] + data."""
    return bytes([2 if stream == "stderr" else 1, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class BodyReader(io.RawIOBase):
    """A request body read from a worker thread: each read asks the event loop for up to n bytes."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self._content = request.content
        self._loop = loop
        self._eof = False

    def readable(self) -> bool:
        return True

    async def _read(self, n: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < n:
            data = await self._content.read(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        if self._eof:
            return 0
        view = memoryview(buffer).cast("B")
        data = asyncio.run_coroutine_threadsafe(self._read(len(view)), self._loop).result()
        if not data:
            self._eof = True
        view[: len(data)] = data
        return len(data)


class ResponseWriter(io.RawIOBase):
    """A streaming response written from a worker thread, in chunks of about 1 MiB."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()


class JsonLines:
    """Docker's JSON-lines progress stream (load, import, pull, build): one object per chunk, '\\r\\n'-ended."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop

    def send(self, item: dict[str, Any]) -> None:
        """From a worker thread."""
        asyncio.run_coroutine_threadsafe(self.asend(item), self._loop).result()

    async def asend(self, item: dict[str, Any]) -> None:
        """From the event loop."""
        await self._response.write(json.dumps(item).encode() + b"\r\n")

    async def error(self, message: str) -> None:
        await self.asend({"errorDetail": {"message": message}, "error": message})
