"""Container endpoints: create, start, attach, wait, logs, stop, kill, restart, pause, unpause, rename, resize,
delete, list, inspect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, BinaryIO, cast

from aiohttp import web

from berth.api import containers_extra, containers_json, hijack, networks
from berth.api.app import Router, engine_of, json_response, prepare_headers
from berth.api.health_json import check_health_filter, health_status
from berth.api.logread import LogReader
from berth.api.params import boolean, check_filters, filters, integer
from berth.api.replay import log_replay
from berth.api.streams import ResponseWriter, blocking, frame
from berth.engine import fsops
from berth.engine.containers import Container, Status
from berth.engine.lifecycle import CreateRequest, parse_signal
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.oci.config import rfc3339_to_unix
from berth.oci.reference import Reference


def _graph(engine: Any, c: Container) -> dict[str, str]:
    snap = engine.snapshots.root
    return {"MergedDir": str(c.dir / "bundle" / "rootfs"), "UpperDir": str(snap), "WorkDir": str(snap)}


async def create(request: web.Request) -> web.Response:
    engine = engine_of(request)
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise InvalidArgument("the create request body is not valid JSON") from None
    draft = containers_json.parse_create(body)
    name = request.query.get("name", "")
    c = await blocking(lambda: engine.containers.create(CreateRequest(name, draft)))
    return json_response({"Id": c.id, "Warnings": []}, status=201)


async def start(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await blocking(lambda: engine.containers.start(request.match_info["id"]))
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    ref = request.match_info["id"]
    condition = request.query.get("condition") or "not-running"
    engine.containers.get(ref)   # 404 before the headers go out
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    prepare_headers(resp)
    await resp.prepare(request)   # headers at once: the CLI waits for them before it starts the container
    try:
        state = await blocking(lambda: engine.containers.wait(ref, condition))
        body: dict[str, Any] = {"Error": None, "StatusCode": state.exit_code}
        if state.error and condition != "removed":
            body["Error"] = {"Message": state.error}
    except BerthError as exc:
        body = {"Error": {"Message": str(exc)}, "StatusCode": -1}
    with contextlib.suppress(ConnectionError):   # the CLI drops a wait it no longer needs (run -d)
        await resp.write(json.dumps(body).encode() + b"\n")
        await resp.write_eof()
    return resp


async def attach(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    ref = request.match_info["id"]
    c = engine.containers.get(ref)
    stdin, stdout, stderr = boolean(request, "stdin"), boolean(request, "stdout"), boolean(request, "stderr")
    content_type = "application/vnd.docker.raw-stream" if c.config.tty else \
        "application/vnd.docker.multiplexed-stream"
    transport, raw = await hijack.upgrade(request, content_type)
    if boolean(request, "logs"):
        path = engine.containers.logs_path(c)
        transport.write(await blocking(lambda: log_replay(path, stdout, stderr, c.config.tty)))
    if not boolean(request, "stream"):      # Docker: without stream=1, the logs (if asked) are all there is
        transport.close()
        return web.StreamResponse(status=101)
    try:
        upstream = await blocking(lambda: engine.containers.attach(c.id, stdin, stdout, stderr))
    except BerthError as exc:
        transport.write(f"Error attaching: {exc}\n".encode())
        transport.close()
        return web.StreamResponse(status=101)
    await hijack.relay(transport, raw, upstream, stdin)
    return web.StreamResponse(status=101)


async def logs(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    want = {s for s in ("stdout", "stderr") if boolean(request, s)}
    if not want:
        raise InvalidArgument("You must choose at least one stream")
    follow, timestamps = boolean(request, "follow"), boolean(request, "timestamps")
    since = float(request.query.get("since") or 0)
    until = float(request.query.get("until") or 0)
    tail_text = request.query.get("tail", "all")
    tail = None if tail_text in ("", "all") else int(tail_text)
    # opened before the headers go out: with them, a client may remove the container (logread's docstring)
    reader = await blocking(lambda: LogReader(engine.containers.logs_path(c)))
    try:
        return await _logs(request, engine, c, reader, want, follow, timestamps, since, until, tail)
    finally:
        reader.close()


async def _logs(request: web.Request, engine: Any, c: Container, reader: LogReader, want: set[str], follow: bool,
                timestamps: bool, since: float, until: float, tail: int | None) -> web.StreamResponse:
    resp = web.StreamResponse()
    prepare_headers(resp)
    await resp.prepare(request)

    def render(line: bytes) -> bytes | None:
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if entry.get("stream") not in want:
            return None
        when = entry.get("time", "")
        t = rfc3339_to_unix(when)
        if (since and t < since) or (until and t > until):
            return None
        data = entry.get("log", "").encode()
        if timestamps:
            data = when.encode() + b" " + data
        return data if c.config.tty else frame(entry["stream"], data)

    lines = await blocking(reader.lines)
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    for line in lines:
        out = render(line)
        if out:
            await resp.write(out)

    def stopped() -> bool:
        try:
            current = engine.containers.store.load(c.id)
        except NotFound:
            return True
        return current.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING, Status.CREATED)

    async def emit(line: bytes) -> None:
        out = render(line)
        if out:
            await resp.write(out)

    with contextlib.suppress(ConnectionError):   # a `logs -f` client going away ends the stream
        if follow:
            await reader.follow(stopped, emit)
        await resp.write_eof()
    return resp


async def stop(request: web.Request) -> web.Response:
    engine = engine_of(request)
    t = integer(request, "t")
    sig = request.query.get("signal")
    await blocking(lambda: engine.containers.stop(request.match_info["id"], t, parse_signal(sig) if sig else None))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    engine = engine_of(request)
    sig = parse_signal(request.query.get("signal") or "SIGKILL")
    await blocking(lambda: engine.containers.kill(request.match_info["id"], sig))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await blocking(lambda: engine.containers.restart(request.match_info["id"], integer(request, "t")))
    return web.Response(status=204)


async def pause(request: web.Request) -> web.Response:
    await blocking(lambda: engine_of(request).containers.pause(request.match_info["id"]))
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await blocking(lambda: engine_of(request).containers.unpause(request.match_info["id"]))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    await blocking(lambda: engine_of(request).containers.rename(request.match_info["id"], name))
    return web.Response(status=204)


async def resize(request: web.Request) -> web.Response:
    h, w = integer(request, "h") or 0, integer(request, "w") or 0
    await blocking(lambda: engine_of(request).containers.resize(request.match_info["id"], h, w))
    return web.Response(status=200)


async def delete(request: web.Request) -> web.Response:
    engine = engine_of(request)
    force, volumes = boolean(request, "force"), boolean(request, "v")
    await blocking(lambda: engine.containers.remove(request.match_info["id"], force, volumes))
    return web.Response(status=204)


def _matches(c: Container, given: dict[str, list[str]]) -> bool:
    for key, values in given.items():
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "status" and str(c.state.status) not in values:
            return False
        if key == "label":
            for v in values:
                k, sep, val = v.partition("=")
                if k not in c.config.labels or (sep and c.config.labels[k] != val):
                    return False
        if key == "exited" and not (c.state.status is Status.EXITED and str(c.state.exit_code) in values):
            return False
        if key == "health" and health_status(c) not in values:
            return False
        if key == "ancestor" and not any(v in (c.config.image, str(c.config.image_id)) or
                                         str(c.config.image_id).startswith("sha256:" + v) for v in values):
            return False
    return True


async def list_containers(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = filters(request)
    check_filters(given, {"id", "name", "status", "label", "exited", "ancestor", "before", "since", "network",
                          "volume", "health", "is-task", "publish", "expose"})
    check_health_filter(given.get("health", []))
    show_all = boolean(request, "all")
    limit = integer(request, "limit")
    every = await blocking(engine.containers.list_containers)
    extra = await blocking(lambda: containers_extra.ps_filter(engine, given))
    now = time.time()
    out = []
    for c in every:
        # limit > 0 (ps -n / -l) means the latest containers whatever their state, as dockerd
        if not show_all and not (limit is not None and limit > 0) \
                and c.state.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING) \
                and "status" not in given and "exited" not in given:
            continue
        if not _matches(c, given) or not extra(c):
            continue
        out.append(networks.decorate_list_item(containers_json.list_item(c, now), engine, c))
    if limit is not None and limit > 0:
        out = out[:limit]
    if boolean(request, "size"):
        await blocking(lambda: containers_extra.add_sizes(engine, out))
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    return json_response(networks.decorate_inspect(
        containers_json.inspect(c, str(engine.containers.logs_path(c)), _graph(engine, c)), engine, c))


async def top(request: web.Request) -> web.Response:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    titles, rows = await blocking(lambda: fsops.top(engine.containers, c, request.query.get("ps_args", "-ef")))
    engine.events.container(c, "top")
    return json_response({"Titles": titles, "Processes": rows})


async def changes(request: web.Request) -> web.Response:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    found = await blocking(lambda: fsops.changes(engine.snapshots, c))
    return json_response([{"Path": path, "Kind": kind} for path, kind in found] or None)


async def export(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    c = engine.containers.get(request.match_info["id"])
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    prepare_headers(resp)
    await resp.prepare(request)
    writer = ResponseWriter(resp, asyncio.get_running_loop())

    def run() -> None:
        fsops.export(engine.containers, engine.snapshots, c, cast(BinaryIO, writer))
        writer.flush()

    await blocking(run)
    engine.events.container(c, "export")
    await resp.write_eof()
    return resp


async def commit(request: web.Request) -> web.Response:
    engine = engine_of(request)
    q = request.query
    c = engine.containers.get(q.get("container", ""))
    repo = q.get("repo", "")
    tag = Reference.parse(f"{repo}:{q.get('tag') or 'latest'}") if repo else None
    image_id = await blocking(lambda: fsops.commit(
        engine.containers, engine.snapshots, engine.images, c, tag, q.get("comment", ""), q.get("author", ""),
        [line for line in q.getall("changes", []) for line in line.splitlines() if line.strip()],
        q.get("pause", "1").lower() not in ("0", "false", "no")))
    if tag is not None:
        engine.events.image("tag", str(image_id), tag.familiar)
    engine.events.container(c, "commit", {"comment": q.get("comment", ""), "imageID": str(image_id),
                                          "imageRef": tag.familiar if tag else ""})
    return json_response({"Id": str(image_id)}, status=201)


async def prune(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = filters(request)
    check_filters(given, {"label", "until"})
    deleted: list[str] = []
    for c in await blocking(engine.containers.list_containers):
        if c.state.status in (Status.CREATED, Status.EXITED, Status.DEAD) and _matches(c, {
                k: v for k, v in given.items() if k == "label"}):
            await blocking(lambda c=c: engine.containers.remove(c.id))  # type: ignore[misc]
            deleted.append(c.id)
    engine.events.emit("container", "prune", "", {"reclaimed": "0"})
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


def register(router: Router) -> None:
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("DELETE", "/containers/{id}", delete)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("GET", "/containers/{id}/export", export)
    router.add("POST", "/commit", commit)
    router.add("POST", "/containers/prune", prune)
