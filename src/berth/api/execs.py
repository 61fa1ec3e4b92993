"""Exec endpoints: create, start (hijacked stream), resize, inspect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from typing import Any

from aiohttp import web

from berth.api.app import Router, engine_of, json_response
from berth.api.hijack import upgrade
from berth.api.params import integer
from berth.api.streams import frame
from berth.engine.events import exec_action
from berth.engine.execs import ExecConfig, ExecSession
from berth.errors import InvalidArgument


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        value = await request.json(loads=json.loads)
    except ValueError:
        raise InvalidArgument("the request body is not valid JSON") from None
    return value if isinstance(value, dict) else {}


async def create(request: web.Request) -> web.Response:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    body = await _body(request)
    cmd = body.get("Cmd") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    config = ExecConfig(c.id, tuple(str(x) for x in cmd), bool(body.get("Tty")), bool(body.get("AttachStdin")),
                        body.get("AttachStdout", True) is not False, body.get("AttachStderr", True) is not False,
                        tuple(body.get("Env") or ()), str(body.get("WorkingDir") or ""), str(body.get("User") or ""),
                        bool(body.get("Privileged")), _console_size(body.get("ConsoleSize")))
    record = engine.execs.create(c, config)
    engine.events.container(c, exec_action("exec_create", config.cmd), {"execID": record.id})
    return json_response({"Id": record.id}, status=201)


def _console_size(value: Any) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return 0, 0


async def start(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    record = engine.execs.get(request.match_info["id"])
    body = await _body(request)
    c = engine.containers.get(record.config.container_id)
    loop = asyncio.get_running_loop()
    record.on_exit = lambda code: engine.events.container(c, "exec_die", {"execID": record.id, "exitCode": str(code)})
    session = await loop.run_in_executor(None, lambda: engine.execs.start(record, c))
    engine.events.container(c, exec_action("exec_start", record.config.cmd), {"execID": record.id})
    if body.get("Detach"):
        for _, fd in session.outputs:
            threading.Thread(target=_drain, args=(fd,), daemon=True).start()
        os.close(session.stdin)
        return web.Response(status=200)
    tty = record.config.tty
    transport, raw = await upgrade(request, "application/vnd.docker.raw-stream" if tty else
                                   "application/vnd.docker.multiplexed-stream")
    await _relay(loop, transport, raw, session, tty)
    return web.StreamResponse(status=101)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass
    os.close(fd)


async def _relay(loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, raw: Any, session: ExecSession,
                 tty: bool) -> None:
    cfg = session.record.config
    remaining = len(session.outputs)
    finished = asyncio.Event()

    def reader(stream: str, fd: int) -> None:
        nonlocal remaining
        wanted = stream == "tty" or (stream == "stdout" and cfg.attach_stdout) or \
            (stream == "stderr" and cfg.attach_stderr)
        try:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break                   # EIO: the pty's other side is gone
                if not data:
                    break
                if wanted:
                    out = data if tty else frame(stream, data)
                    loop.call_soon_threadsafe(transport.write, out)
        finally:
            os.close(fd)

            def one_done() -> None:
                nonlocal remaining
                remaining -= 1
                if remaining == 0:
                    finished.set()
            loop.call_soon_threadsafe(one_done)

    for stream, fd in session.outputs:
        threading.Thread(target=reader, args=(stream, fd), daemon=True).start()
    stdin = session.stdin
    if not cfg.attach_stdin and not tty:
        os.close(stdin)
        stdin = -1

    async def up() -> None:
        nonlocal stdin
        while True:
            data = await raw.queue.get()
            if data is None or not data:
                if stdin >= 0 and not tty:
                    os.close(stdin)
                    stdin = -1
                return
            if stdin >= 0 and cfg.attach_stdin:
                with contextlib.suppress(OSError):
                    await loop.run_in_executor(None, os.write, stdin, data)

    pump = asyncio.ensure_future(up())
    await finished.wait()
    await loop.run_in_executor(None, session.record.done.wait)
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump
    if stdin >= 0:
        os.close(stdin)
    if not transport.is_closing():
        transport.close()


async def resize(request: web.Request) -> web.Response:
    engine = engine_of(request)
    engine.execs.resize(request.match_info["id"], integer(request, "h") or 0, integer(request, "w") or 0)
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    record = engine.execs.get(request.match_info["id"])
    cfg = record.config
    return json_response({
        "CanRemove": False, "ContainerID": cfg.container_id, "DetachKeys": "", "ExitCode": record.exit_code,
        "ID": record.id, "OpenStderr": cfg.attach_stderr, "OpenStdin": cfg.attach_stdin,
        "OpenStdout": cfg.attach_stdout, "Running": record.running, "Pid": record.proc.pid if record.proc else 0,
        "ProcessConfig": {"arguments": list(cfg.cmd[1:]), "entrypoint": cfg.cmd[0] if cfg.cmd else "",
                          "privileged": cfg.privileged, "tty": cfg.tty, "user": cfg.user},
    })


def register(router: Router) -> None:
    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("POST", "/exec/{id}/resize", resize)
    router.add("GET", "/exec/{id}/json", inspect)
