"""Assembling and running the registry: the aiohttp application, TLS, and the upload-expiry task.

May import: berth.content, berth.oci, berth.util, berth.errors, aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from berth.registry import ui
from berth.registry.app import Registry, errors_middleware


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    expire_interval: float = 60.0


def make_app(registry: Registry, expire_interval: float = 60.0) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=1 << 20)
    app.router.add_route("*", "/v2", registry.dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", registry.dispatch)
    app.router.add_get("/token", registry.token)
    ui.add_routes(app, registry)

    async def background(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(registry.expire_uploads(expire_interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        registry.close()

    app.cleanup_ctx.append(background)
    return app


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(registry: Registry, options: ServeOptions) -> None:
    """Serve until SIGTERM or SIGINT; prints one line `listening on URL` (tests wait for it)."""
    app = make_app(registry, options.expire_interval)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ctx = tls_context(options.tls_cert, options.tls_key) if options.tls_cert and options.tls_key else None
    site = web.TCPSite(runner, options.host, options.port, ssl_context=ctx, backlog=512)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheme = "https" if ctx else "http"
    host, port = runner.addresses[0][:2]  # the real port when options.port was 0
    print(f"listening on {scheme}://{host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
