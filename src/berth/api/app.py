"""The aiohttp application: routing with Docker's `/vX.Y` prefixes, version negotiation, common headers, and
errors as `{"message": ...}`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from berth import __version__
from berth.api.errors import http_status
from berth.engine.engine import Engine
from berth.errors import BerthError

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
ENGINE_KEY = web.AppKey("engine", Engine)
log = logging.getLogger("berthd")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def request_version(request: web.Request) -> tuple[int, int]:
    """The API version the client asked for (the path prefix), or the newest for unversioned paths."""
    value = request.get("api_version")
    return value if isinstance(value, tuple) else version_tuple(API_VERSION)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE_KEY]


def json_response(value: Any, status: int = 200) -> web.Response:
    """JSON exactly as dockerd labels it: the docker CLI parses error bodies only for "application/json"."""
    return web.Response(body=json.dumps(value).encode(), status=status, headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


@web.middleware
async def _errors_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = _PREFIX.match(request.path)
    if match:
        wanted = (int(match.group(1)), int(match.group(2)))
        if wanted > version_tuple(API_VERSION):
            resp: web.StreamResponse = error_response(
                400, f"client version {wanted[0]}.{wanted[1]} is too new. Maximum supported API version is "
                     f"{API_VERSION}")
            _headers(resp)
            return resp
        if wanted < version_tuple(MIN_API_VERSION):
            resp = error_response(400, f"client version {wanted[0]}.{wanted[1]} is too old. Minimum supported API "
                                       f"version is {MIN_API_VERSION}, please upgrade your client to a newer version")
            _headers(resp)
            return resp
        request["api_version"] = wanted
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            resp = error_response(exc.status, "page not found" if exc.status == 404 else exc.reason)
        else:
            raise
    except BerthError as exc:
        status = http_status(exc)
        resp = web.Response(status=304) if status == 304 else error_response(status, str(exc))
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
    except Exception as exc:  # a bug: answer in Docker's shape and keep the traceback in the log
        log.exception("%s %s failed", request.method, request.path)
        if request.get("streaming"):
            raise
        resp = error_response(500, f"internal error in berthd: {exc}")
    if not resp.prepared:
        _headers(resp)
    return resp


def _headers(resp: web.StreamResponse) -> None:
    resp.headers["Api-Version"] = API_VERSION
    resp.headers["Docker-Experimental"] = "false"
    resp.headers["Ostype"] = "linux"
    resp.headers["Server"] = f"berth/{__version__} (linux)"


def prepare_headers(resp: web.StreamResponse) -> None:
    """For streaming handlers that prepare their response themselves."""
    _headers(resp)


class Router:
    """Registers every route both bare and under the `/vX.Y` prefix."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._app.router.add_route(method, path, handler)
        self._app.router.add_route(method, r"/{_version:v[0-9]+\.[0-9]+}" + path, handler)


def make_app(engine: Engine) -> web.Application:
    from berth.api import containers, containers_extra, distribution, execs, images, system  # the route tables

    app = web.Application(middlewares=[_errors_and_headers], client_max_size=0)
    app[ENGINE_KEY] = engine
    router = Router(app)
    system.register(router)
    distribution.register(router)  # before images: POST /images/{name}/push ahead of any catch-all
    images.register(router)
    containers.register(router)
    containers_extra.register(router)
    execs.register(router)
    from berth.api import volumes
    volumes.register(router)
    from berth.api import events
    events.register(router)
    from berth.api import networks
    networks.register(router)
    router.add("POST", "/build", _build)
    return app


async def _build(request: web.Request) -> web.StreamResponse:
    """POST /build, with the builder imported at the first build: a daemon that never builds does not carry it
    (about 1.5 MiB of its idle RSS)."""
    from berth.api import build
    return await build.build(request)
