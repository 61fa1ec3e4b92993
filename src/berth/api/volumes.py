"""Volume endpoints: create, list (filters name, label, dangling, driver), inspect, remove, prune; Docker's JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from berth.api.app import Router, engine_of, json_response, request_version
from berth.api.params import boolean, filters
from berth.api.streams import blocking
from berth.errors import InvalidArgument
from berth.volumes.store import ANONYMOUS_LABEL, Volume

_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def volume_json(v: Volume) -> dict[str, Any]:
    return {"CreatedAt": v.created_at, "Driver": v.driver, "Labels": dict(v.labels) or None,
            "Mountpoint": str(v.mountpoint), "Name": v.name, "Options": dict(v.options) or None, "Scope": "local"}


def _check(given: Mapping[str, list[str]], allowed: set[str]) -> None:
    for key in given:
        if key not in allowed:
            raise InvalidArgument(f"Invalid filter '{key}'")


def _flag(given: Mapping[str, list[str]], key: str) -> bool | None:
    values = {v.lower() for v in given.get(key, [])}
    if not values:
        return None
    if values - _TRUE - _FALSE or len(values) > 1:   # dockerd prints the values as a Go slice
        raise InvalidArgument(f"Invalid filter '{key}=[{' '.join(given[key])}]'")
    return values <= _TRUE


def _matches_name(pattern: str, name: str) -> bool:
    """dockerd's name filter is a regular expression search (a bad one matches nothing)."""
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _labels_match(v: Volume, wanted: Sequence[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in v.labels or (sep and v.labels[key] != value):
            return False
    return True


async def create(request: web.Request) -> web.Response:
    engine = engine_of(request)
    try:
        body = await request.json(loads=json.loads) if request.can_read_body else {}
    except ValueError:
        raise InvalidArgument("the volume create request body is not valid JSON") from None
    if not isinstance(body, Mapping):
        raise InvalidArgument("the volume create request body must be a JSON object")
    for key in ("DriverOpts", "Labels"):
        if body.get(key) is not None and not isinstance(body.get(key), Mapping):
            raise InvalidArgument(f"invalid {key}: expected a JSON object of strings")
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise InvalidArgument("invalid Name: expected a string")
    labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    options = {str(k): str(v) for k, v in (body.get("DriverOpts") or {}).items()}
    volume, _ = await blocking(lambda: engine.volumes.create(name, str(body.get("Driver") or "local"), labels,
                                                             options))
    return json_response(volume_json(volume), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = filters(request)
    _check(given, {"name", "label", "dangling", "driver"})
    dangling = _flag(given, "dangling")

    def run() -> list[dict[str, Any]]:
        users = engine.volumes.references() if dangling is not None else {}
        out = []
        for v in engine.volumes.all():
            if "name" in given and not any(_matches_name(n, v.name) for n in given["name"]):
                continue
            if "driver" in given and v.driver not in given["driver"]:
                continue
            if "label" in given and not _labels_match(v, given["label"]):
                continue
            if dangling is not None and dangling == bool(users.get(v.name)):
                continue
            out.append(volume_json(v))
        return out

    return json_response({"Volumes": await blocking(run), "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return json_response(volume_json(engine.volumes.get(request.match_info["name"])))


async def delete(request: web.Request) -> web.Response:
    engine = engine_of(request)
    force = boolean(request, "force")
    await blocking(lambda: engine.volumes.remove(request.match_info["name"], force))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    """API 1.42+: only anonymous volumes unless `all=true`, as dockerd 23+; older clients: every unused one."""
    engine = engine_of(request)
    given = filters(request)
    _check(given, {"label", "label!", "all"})
    every = _flag(given, "all")
    if every is not None and request_version(request) < (1, 42):
        raise InvalidArgument("Invalid filter 'all'")
    only_anonymous = request_version(request) >= (1, 42) and not every

    def keep(v: Volume) -> bool:
        if only_anonymous and ANONYMOUS_LABEL not in v.labels:
            return True
        if "label" in given and not _labels_match(v, given["label"]):
            return True
        return "label!" in given and any(_labels_match(v, [item]) for item in given["label!"])

    removed, reclaimed = await blocking(lambda: engine.volumes.prune(keep))
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("POST", "/volumes/create", create)
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", delete)
