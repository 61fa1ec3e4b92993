"""Container endpoints beyond the lifecycle: stats, the archive API (docker cp), update.

GET  /containers/{id}/stats      ?stream=1 (default: one object a second), stream=0 (one, with a precpu sample a
                                 second earlier), one-shot=1 (API >= 1.41: no precpu sample)
HEAD|GET|PUT /containers/{id}/archive?path=   (X-Docker-Container-Path-Stat; tar out; tar in)
POST /containers/{id}/update
GET  /system/df                  (?type=container|image|volume|build-cache)
and the parts of GET /containers/json that need more than a record: sizes (?size=1) and the filters before,
since, network, volume, is-task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, BinaryIO, cast

from aiohttp import web

from berth.api import containers_json, images_json, networks, stats_json, volumes
from berth.api.app import Router, engine_of, json_response, prepare_headers, request_version
from berth.api.params import boolean
from berth.api.streams import BodyReader, ResponseWriter, blocking
from berth.engine import archive, stats, update, usage
from berth.engine.containers import Container, Status
from berth.engine.engine import Engine
from berth.errors import BerthError, InvalidArgument, NotFound

STATS_INTERVAL = 1.0     # seconds between samples, as dockerd's collector


def _live(c: Container) -> bool:
    return c.state.status in (Status.RUNNING, Status.PAUSED) and c.state.pid > 0


def _sample(c: Container) -> stats.Sample | None:
    if not _live(c):
        return None
    try:
        sample = stats.sample(stats.cgroup_of(c.state.pid), c.state.pid)
    except NotFound:
        return None   # it exited between the check and the read
    if c.config.network_mode == "host":
        return replace(sample, networks={})   # the host's interfaces are not the container's (dockerd shows none)
    return sample


async def container_stats(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    ref = request.match_info["id"]
    c = engine.containers.get(ref)
    stream = boolean(request, "stream", default=True)
    one_shot = boolean(request, "one-shot") and request_version(request) >= (1, 41)
    if one_shot and stream:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    if not stream:
        pre = None
        if not one_shot and _live(c):
            pre = await blocking(lambda: _sample(c))
            await asyncio.sleep(STATS_INTERVAL)
            c = engine.containers.get(c.id)
        now = await blocking(lambda: _sample(c))
        return json_response(stats_json.stats_json(c.name, c.id, now, pre if now else None))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    prepare_headers(resp)
    await resp.prepare(request)
    previous: stats.Sample | None = None
    with contextlib.suppress(ConnectionError):
        while True:
            try:
                c = engine.containers.get(c.id)
            except NotFound:
                break
            now = await blocking(lambda c=c: _sample(c))  # type: ignore[misc]
            if now is None and previous is not None:
                break      # it stopped: dockerd ends the stream when it stops collecting
            await resp.write(json.dumps(stats_json.stats_json(c.name, c.id, now, previous)).encode() + b"\n")
            previous = now
            await asyncio.sleep(STATS_INTERVAL)
        await resp.write_eof()
    return resp


# -- archive --------------------------------------------------------------------------------------------------


def go_file_mode(st_mode: int) -> int:
    """A st_mode as Go's os.FileMode, which the X-Docker-Container-Path-Stat header carries."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFBLK: 1 << 26,
             stat.S_IFCHR: (1 << 26) | (1 << 21), stat.S_IFIFO: 1 << 25, stat.S_IFSOCK: 1 << 24}.get(kind, 0)
    for bit, flag in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if st_mode & bit:
            mode |= flag
    return mode


def path_stat_json(st: archive.PathStat) -> dict[str, object]:
    return {"name": st.name, "size": st.size, "mode": go_file_mode(st.mode), "mtime": stats_json.go_time(st.mtime_ns),
            "linkTarget": st.link_target}


def _stat_header(st: archive.PathStat) -> str:
    return base64.b64encode(json.dumps(path_stat_json(st)).encode()).decode()


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("path parameter is required")   # dockerd's words for a missing path
    return path


async def archive_head(request: web.Request) -> web.Response:
    engine = engine_of(request)
    ref = request.match_info["id"]
    c = engine.containers.get(ref)
    path = _path(request)
    st = await blocking(lambda: archive.stat_path(engine.containers, engine.snapshots, c, path, ref))
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(st),
                                             "Content-Type": "application/json"})


async def archive_get(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    ref = request.match_info["id"]
    c = engine.containers.get(ref)
    path = _path(request)
    loop = asyncio.get_running_loop()
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    prepared = asyncio.Event()

    def on_stat(st: archive.PathStat) -> None:
        # headers carry the stat: they go out only once the path is known to exist
        async def go() -> None:
            resp.headers["X-Docker-Container-Path-Stat"] = _stat_header(st)
            prepare_headers(resp)
            await resp.prepare(request)
            prepared.set()
        asyncio.run_coroutine_threadsafe(go(), loop).result()

    writer = ResponseWriter(resp, loop)

    def run() -> None:
        archive.read_archive(engine.containers, engine.snapshots, c, path, ref, on_stat, cast(BinaryIO, writer))
        writer.flush()
        engine.events.container(c, "archive-path")

    try:
        await blocking(run)
    except BerthError:
        if not prepared.is_set():
            raise
        request["streaming"] = True
        raise
    await resp.write_eof()
    return resp


async def archive_put(request: web.Request) -> web.Response:
    engine = engine_of(request)
    ref = request.match_info["id"]
    c = engine.containers.get(ref)
    path = _path(request)
    options = archive.PutOptions(no_overwrite_dir_non_dir=boolean(request, "noOverwriteDirNonDir"),
                                 copy_uid_gid=boolean(request, "copyUIDGID"))
    body = BodyReader(request, asyncio.get_running_loop())
    await blocking(lambda: archive.write_archive(engine.containers, engine.snapshots, c, path, ref,
                                                 cast(BinaryIO, body), options))
    engine.events.container(c, "extract-to-dir")
    return web.Response(status=200)


# -- update ---------------------------------------------------------------------------------------------------


async def container_update(request: web.Request) -> web.Response:
    engine = engine_of(request)
    try:
        body = await request.json(loads=json.loads) if request.can_read_body else {}
    except ValueError:
        raise InvalidArgument("the update request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the update request body must be a JSON object")
    changes = update.parse_update(body)
    ref = request.match_info["id"]
    warnings = await blocking(lambda: update.update(engine.containers, ref, changes))
    engine.events.container(engine.containers.get(ref), "update")
    return json_response({"Warnings": warnings})


# -- ps -s and filters, system df -----------------------------------------------------------------------------


def ps_filter(engine: Engine, given: Mapping[str, list[str]]) -> Callable[[Container], bool]:
    """The `docker ps` filters berth's list handler leaves to this module: before, since (by the containers'
    creation), network (name, or id prefix), volume (name or destination), is-task (berth runs no swarm tasks).
    A before/since naming no container is Docker's 404."""
    before = [engine.containers.get(v) for v in given.get("before", [])]
    since = [engine.containers.get(v) for v in given.get("since", [])]
    networks = given.get("network", [])
    volumes = given.get("volume", [])
    tasks = given.get("is-task", [])
    for value in tasks:
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"Invalid filter 'is-task={value}'")

    def keep(c: Container) -> bool:
        if any(c.created >= b.created or c.id == b.id for b in before):
            return False
        if any(c.created <= s.created or c.id == s.id for s in since):
            return False
        if tasks and any(v.lower() in ("true", "1") for v in tasks):
            return False
        if networks:
            attached = engine.networks.attachments(c.id)
            if not any(a.network.name == v or a.network.id.startswith(v) for a in attached for v in networks):
                return False
        return not volumes or any(m.destination == v or (str(m.type) == "volume" and m.source == v)
                                   for m in c.config.mounts for v in volumes)

    return keep


def add_sizes(engine: Engine, items: list[dict[str, Any]]) -> None:
    """`docker ps -s` / `?size=1`: SizeRw (left out when 0, as dockerd does) and SizeRootFs on each item."""
    image_sizes: dict[Any, int] = {}
    for item in items:
        try:
            c = engine.containers.get(item["Id"])
        except NotFound:
            continue
        size = usage.container_size(engine.snapshots, engine.images, c, image_sizes)
        if size.rw:
            item["SizeRw"] = size.rw
        item["SizeRootFs"] = size.root_fs


_DF_TYPES = {"container", "image", "volume", "build-cache"}


def _system_df(engine: Engine, version: tuple[int, int], wanted: set[str]) -> dict[str, Any]:
    every = engine.containers.list_containers()
    out: dict[str, Any] = {}
    if "image" in wanted:
        disk = usage.image_usage(engine.images, every)
        images = []
        for u in disk.images:
            item = images_json.list_item(u.view, version)
            item["Containers"] = u.containers
            item["SharedSize"] = u.shared_size
            images.append(item)
        out["LayersSize"] = disk.layers_size
        out["Images"] = images
    if "container" in wanted:
        now = time.time()
        items = [networks.decorate_list_item(containers_json.list_item(c, now), engine, c) for c in every]
        add_sizes(engine, items)
        out["Containers"] = items
    if "volume" in wanted:
        out["Volumes"] = [{**volumes.volume_json(v), "UsageData": {"Size": size, "RefCount": refs}}
                          for v, size, refs in engine.volumes.usage()]
    if "build-cache" in wanted:
        out["BuildCache"] = []
        out["BuilderSize"] = 0
    return out


async def system_df(request: web.Request) -> web.Response:
    engine = engine_of(request)
    wanted = set(request.query.getall("type", [])) or _DF_TYPES
    unknown = wanted - _DF_TYPES
    if unknown:
        raise InvalidArgument(f"unknown object type: {sorted(unknown)[0]}")
    version = request_version(request)
    return json_response(await blocking(lambda: _system_df(engine, version, wanted)))


def register(router: Router) -> None:
    router.add("GET", "/containers/{id}/stats", container_stats)
    router.add("HEAD", "/containers/{id}/archive", archive_head)
    router.add("GET", "/containers/{id}/archive", archive_get)
    router.add("PUT", "/containers/{id}/archive", archive_put)
    router.add("POST", "/containers/{id}/update", container_update)
    router.add("GET", "/system/df", system_df)
