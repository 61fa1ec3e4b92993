"""berthd gives freed memory back once it is idle: the trim runs once, shortly after the last request in flight
ends, never while one runs; and the glibc calls behind it work."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from berth.api.memory import TrimWhenIdle
from berth.util import linux


def test_the_glibc_calls_answer() -> None:
    assert linux.limit_malloc_arenas(8) is True
    assert isinstance(linux.malloc_trim(), bool)


def test_one_trim_after_the_last_request_ends() -> None:
    calls: list[int] = []
    trimmer = TrimWhenIdle(trim=lambda: calls.append(trimmer._in_flight), idle=0.2)
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="slow")

    async def quick(_: web.Request) -> web.Response:
        return web.Response(text="quick")

    async def scenario() -> None:
        app = web.Application(middlewares=[trimmer.middleware])
        app.router.add_get("/slow", slow)
        app.router.add_get("/quick", quick)
        async with TestClient(TestServer(app)) as client:
            pending = asyncio.ensure_future(client.get("/slow"))
            await asyncio.sleep(0.05)
            for _ in range(3):               # quick requests end while the slow one is in flight: no trim
                assert (await client.get("/quick")).status == 200
            await asyncio.sleep(0.4)
            assert calls == []
            release.set()
            assert (await (await pending).text()) == "slow"
            await asyncio.sleep(0.05)
            assert calls == []               # not yet: idle for 0.2 s first
            await (await client.get("/quick")).text()   # a new request restarts the wait
            await asyncio.sleep(0.1)
            assert calls == []
            await asyncio.sleep(0.3)
            assert calls == [0] and trimmer.trims == 1
            await asyncio.sleep(0.3)
            assert trimmer.trims == 1        # once per idle period, not periodically

    asyncio.run(scenario())
