"""berthd's memory between bursts of work: glibc's malloc keeps what threads freed (one heap per thread, up to 8 per
CPU) until asked to give it back. `limit_arenas()` at start caps the heaps at two; `TrimWhenIdle` is an aiohttp
middleware that returns free pages to the kernel shortly after the last request in flight ends (about 4 MiB of RSS
after 20 containers started at once; see bench/README.md).

May import: berth.util, aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from berth.util import linux

ARENAS = 2
IDLE_SECONDS = 0.5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def limit_arenas() -> None:
    linux.limit_malloc_arenas(ARENAS)


class TrimWhenIdle:
    """Counts requests in flight; IDLE_SECONDS after the count drops to zero (and stays there), trims once."""

    def __init__(self, trim: Callable[[], object] = linux.malloc_trim, idle: float = IDLE_SECONDS) -> None:
        self._trim, self._idle = trim, idle
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._in_flight += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._timer = asyncio.get_running_loop().call_later(self._idle, self._run)

    def _run(self) -> None:
        self._timer = None
        if self._in_flight == 0:
            self._trim()
            self.trims += 1
