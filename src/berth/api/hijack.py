"""Docker's hijacked connections (attach, exec start): answer 101 UPGRADED, then the socket is a raw pipe.

aiohttp would parse the client's stdin as another HTTP request, so the transport is handed to a plain protocol
that queues what arrives; writes go straight to the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios

from aiohttp import web

from berth.api.app import prepare_headers


class _Raw(asyncio.Protocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self) -> bool:
        self.queue.put_nowait(b"")     # half-close: keep the transport open for our output
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)


async def upgrade(request: web.Request, content_type: str) -> tuple[asyncio.Transport, _Raw]:
    upgrading = "upgrade" in request.headers.get("Connection", "").lower()
    resp = web.StreamResponse(status=101 if upgrading else 200, reason="UPGRADED" if upgrading else "OK",
                              headers={"Content-Type": content_type})
    if upgrading:
        resp.headers["Connection"] = "Upgrade"
        resp.headers["Upgrade"] = "tcp"
    prepare_headers(resp)
    resp.force_close()
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    raw = _Raw()
    transport.set_protocol(raw)
    transport.resume_reading()
    await _headers_read(transport)
    return transport, raw   # type: ignore[return-value]


async def _headers_read(transport: asyncio.BaseTransport, limit: float = 0.2) -> None:
    """Wait (briefly) until a unix-socket client has read the 101's headers. docker-py reads them through a
    buffered reader and then reads the raw socket: whatever arrived with the headers is lost to it (the replay of
    attach?logs=1, a quick exec's output). A unix socket's SIOCOUTQ is what its peer has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        try:
            unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return
        if unread == 0:
            return
        await asyncio.sleep(0.001)


async def relay(transport: asyncio.Transport, raw: _Raw, upstream: socket.socket, forward_stdin: bool) -> None:
    """Copy upstream's bytes to the client until upstream ends; the client's bytes (stdin) to upstream, with its
    half-close passed on. Closes the client connection at the end: clients read to EOF."""
    loop = asyncio.get_running_loop()
    upstream.setblocking(False)

    async def down() -> None:
        while True:
            try:
                data = await loop.sock_recv(upstream, 65536)
            except OSError:
                return
            if not data or transport.is_closing():
                return
            transport.write(data)

    async def up() -> None:
        while True:
            data = await raw.queue.get()
            if data is None:
                return
            if not data:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
            if forward_stdin:
                with contextlib.suppress(OSError):
                    await loop.sock_sendall(upstream, data)

    reader = asyncio.ensure_future(up())
    try:
        await down()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        upstream.close()
        if not transport.is_closing():
            transport.close()
