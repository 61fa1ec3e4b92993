"""POST /build: Docker's legacy (classic) builder API.

The body is the build context as a tar (plain or compressed); the query carries the options the docker CLI and
docker-py send (t several times, dockerfile, buildargs/labels/cachefrom as JSON, target, nocache, pull, q, rm,
forcerm, networkmode, platform, extrahosts, shmsize, memory...). The answer is a JSON-lines stream: `stream`
lines (steps, RUN output, "Successfully built <id12>", "Successfully tagged <name>"), `aux` with the image id,
and a final `errorDetail`/`error` item when the build fails. berth never answers `Builder-Version: 2`: clients
must not try BuildKit against it.

This module also assembles the builder's seams from the engine: RUN steps are containers of the engine's
ContainerService (same isolation as `docker run`), FROM pulls go through the engine's pull.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from aiohttp import web

from berth.api.app import engine_of, prepare_headers
from berth.api.distribution import GoJsonLines, _pull_one, registry_hosts
from berth.api.networks import parse_networking
from berth.api.params import boolean, integer
from berth.api.streams import BodyReader, JsonLines, blocking
from berth.build.builder import Builder, BuildOptions
from berth.build.cache import BuildCache
from berth.build.commit import ImageWriter
from berth.build.executor import BuildCancelled, RunOutcome, RunStep, StepFailed
from berth.build.intake import DEFAULT_CONTEXT_LIMIT, Context, ContextIntake, compressed, receive_context
from berth.distribution.client import Registry
from berth.distribution.credentials import AuthConfig, server_key
from berth.engine.containers import ContainerConfig, Status
from berth.engine.engine import Engine
from berth.engine.lifecycle import CreateRequest
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.network.model import ContainerNetworking
from berth.oci.descriptor import Platform
from berth.oci.digest import Digest
from berth.oci.reference import Reference

log = logging.getLogger("berthd")
_BUILDER_KEY: web.AppKey[Builder] = web.AppKey("berth.builder", Builder)
_POLL = 0.02
STEP_LABEL = "berth.build.step"   # on RUN step containers, so those of a build a crash interrupted can be found


class EngineRunner:
    """RUN steps as the engine's containers: created from the step's parent image, started, their json log
    followed until they exit."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def run(self, step: RunStep, on_created: Callable[[str], None], on_output: Callable[[bytes], None],
            cancelled: Callable[[], bool] = lambda: False) -> RunOutcome:
        containers = self._engine.containers
        draft = ContainerConfig(image=str(step.image), image_id=step.image, args=step.args, cmd=step.args,
                                entrypoint=(), env=step.env, working_dir=step.working_dir, user=step.user,
                                network_mode=step.network_mode if step.network_mode in ("host", "none") else "default",
                                memory=step.memory, shm_size=step.shm_size or 64 * 1024 * 1024,
                                labels={**step.labels, STEP_LABEL: "1"},
                                networking=ContainerNetworking(extra_hosts=step.extra_hosts))
        c = containers.create(CreateRequest("", draft))
        on_created(c.id)
        try:
            containers.start(c.id)
            log_path = containers.logs_path(c)
            pos = 0
            while True:
                pos = _relay(log_path, pos, on_output)
                current = containers.store.load(c.id)
                if current.state.status not in (Status.RUNNING, Status.CREATED, Status.PAUSED):
                    break
                if cancelled():
                    raise BuildCancelled(f"the client went away: the build stopped in container {c.id[:12]}")
                time.sleep(_POLL)
            state = containers.wait(c.id)
            _relay(log_path, pos, on_output)
        except BaseException:
            self.remove(c.id)
            raise
        return RunOutcome(c.id, state.exit_code)

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._engine.containers.remove(container_id, force=True)


def _relay(path: Path, pos: int, on_output: Callable[[bytes], None]) -> int:
    """Pass on the complete json-log lines after pos; returns the new position."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return pos
    end = data.rfind(b"\n")
    if end < 0:
        return pos
    for line in data[: end + 1].splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        text = entry.get("log", "")
        if text:
            on_output(text.encode())
    return pos + end + 1


class EnginePuller:
    """FROM (or COPY --from) an image that is not local, or --pull: the engine's pull, its progress in the build's
    stream. Credentials come from the build's X-Registry-Config ({registry: authconfig}, base64url JSON)."""

    def __init__(self, request: web.Request, lines: JsonLines, resp: web.StreamResponse,
                 loop: asyncio.AbstractEventLoop, started: Callable[[], Awaitable[None]]) -> None:
        self._request, self._lines, self._resp, self._loop = request, lines, resp, loop
        self._started = started
        self._auths = _registry_config(request.headers.get("X-Registry-Config", ""))

    def pull(self, name: str, platform: str, on_progress: Callable[[dict[str, object]], None]) -> None:
        # on_progress is for callers off the event loop; the pull runs on it and writes the stream directly
        asyncio.run_coroutine_threadsafe(self._pull(name, platform), self._loop).result()

    async def _pull(self, name: str, platform_text: str) -> None:
        engine = engine_of(self._request)
        ref = Reference.parse(name)
        auth = self._auths.get(server_key(ref.domain)) or self._auths.get(ref.domain) or AuthConfig()
        platform = Platform.parse(platform_text) if platform_text else None
        lines = GoJsonLines(self._lines, self._resp)
        await self._started()
        async with Registry(registry_hosts(self._request), ref.domain, auth) as registry:
            await registry.ping()
            with engine.blobs.lease() as lease:
                try:
                    await lines.send({"status": f"Pulling from {ref.path}",
                                      "id": str(ref.digest) if ref.digest else ref.tag})
                    await _pull_one(engine, registry, lease, ref, platform, lines, None, announce=True)
                except BaseException:
                    lease.release()
                    await asyncio.to_thread(engine.images.collect_garbage)
                    raise


def _registry_config(header: str) -> dict[str, AuthConfig]:
    if not header.strip():
        return {}
    try:
        raw = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, UnicodeDecodeError):
        try:
            raw = json.loads(base64.b64decode(header + "=" * (-len(header) % 4)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument("invalid X-Registry-Config header: expected base64url-encoded JSON") from exc
    if not isinstance(raw, dict):
        return {}
    return {str(k): AuthConfig.from_json(v) for k, v in raw.items() if isinstance(v, dict)}


def builder_of(request: web.Request) -> Builder:
    app = request.app
    if _BUILDER_KEY not in app:
        engine = engine_of(request)
        work = engine.config.root / "builder"
        _clean_leftovers(engine, work)
        writer = ImageWriter(engine.blobs, engine.snapshots, engine.records, engine.images)
        cache = BuildCache(work, lambda image_id: engine.records.get(image_id) is not None)

        def parent_of(image_id: Digest) -> Digest | None:
            rec = engine.records.get(image_id)
            return rec.parent if rec is not None else None

        app[_BUILDER_KEY] = Builder(writer, cache, EngineRunner(engine), work / "tmp", parents=parent_of)
    return app[_BUILDER_KEY]


def _clean_leftovers(engine: Engine, work: Path) -> None:
    """What a crashed build left: RUN step containers (still running: their monitors outlive berthd), mounts and
    temporary directories under the builder's work dir, and its snapshots (keys build-*). Runs once, before this
    daemon's first build."""
    for c in engine.containers.list_containers():
        if c.config.labels.get(STEP_LABEL):
            with contextlib.suppress(BerthError, OSError):
                engine.containers.remove(c.id, force=True)
    tmp = work / "tmp"
    if tmp.exists():
        for entry in tmp.iterdir():
            with contextlib.suppress(BerthError, OSError):
                engine.snapshots.unmount(entry)
            shutil.rmtree(entry, ignore_errors=True)
    for record in (engine.snapshots.root / "active").glob("build-*.json"):
        with contextlib.suppress(BerthError, OSError):
            engine.snapshots.remove(record.stem)


def _json_param(request: web.Request, name: str) -> Any:
    text = request.query.get(name, "")
    if not text or text == "null":
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidArgument(f"invalid {name} parameter {text!r}: expected JSON") from None


def parse_options(request: web.Request) -> BuildOptions:
    tags = []
    for t in request.query.getall("t", []):
        if t:
            try:
                tags.append(Reference.parse(t))
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid reference format: {t}: {exc}") from None
    build_args = _json_param(request, "buildargs") or {}
    labels = _json_param(request, "labels") or {}
    cache_from = _json_param(request, "cachefrom") or []
    if not isinstance(build_args, dict) or not isinstance(labels, dict) or not isinstance(cache_from, list):
        raise InvalidArgument("buildargs and labels must be JSON objects, cachefrom a JSON list")
    network = request.query.get("networkmode", "") or "default"
    if network not in ("default", "bridge", "host", "none"):
        raise InvalidArgument(f"network mode {network!r} is not supported for builds: use default, host or none")
    # --add-host: the CLI joins them with commas; RUN steps' /etc/hosts get them (checked as `docker run`'s)
    extra_hosts = tuple(h for v in request.query.getall("extrahosts", ()) for h in v.split(",") if h)
    parse_networking({}, {"ExtraHosts": list(extra_hosts)})
    return BuildOptions(
        dockerfile=request.query.get("dockerfile", "") or "Dockerfile", tags=tuple(tags),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        labels={str(k): str(v) for k, v in labels.items()}, target=request.query.get("target", ""),
        no_cache=boolean(request, "nocache"), pull=boolean(request, "pull"),
        network_mode="default" if network == "bridge" else network, cache_from=tuple(str(c) for c in cache_from),
        platform=request.query.get("platform", ""), extra_hosts=extra_hosts,
        shm_size=integer(request, "shmsize", 0) or 0, memory=integer(request, "memory", 0) or 0)


async def build(request: web.Request) -> web.StreamResponse:
    if request.query.get("version", "1") == "2":
        raise InvalidArgument("BuildKit (version=2) is not supported by berth: build with DOCKER_BUILDKIT=0")
    if request.query.get("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as the request body")
    options = parse_options(request)
    quiet = boolean(request, "q")
    builder = builder_of(request)
    engine = engine_of(request)
    loop = asyncio.get_running_loop()
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    prepare_headers(resp)
    lines = JsonLines(resp, loop)

    async def started() -> None:
        """The 200 goes out with the first item: a context or Dockerfile refused before any step is an HTTP
        error, as dockerd answers it (the CLI prints "Error response from daemon: ...")."""
        if not resp.prepared:
            request["streaming"] = True
            await resp.prepare(request)

    work = engine.config.root / "builder" / "tmp"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    progress = _Progress(loop, started, resp)

    def emit(item: dict[str, Any]) -> None:
        if quiet and "stream" in item:
            return
        progress.put(item)

    async def before_pull() -> None:
        await progress.flush()
        await started()

    def run(received: Context, took: float) -> str:
        try:
            started = time.monotonic()
            result = builder.build(received, options, emit, bases=puller, cancelled=gone)
            log.info("build %s: context %d bytes received in %.3f s, built in %.3f s", result.image.hex[:12],
                     received.size, took, time.monotonic() - started)
        finally:
            received.close()
            _discard(ctx)
        return str(result.image)

    puller = EnginePuller(request, lines, resp, loop, before_pull)

    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    ctx = Path(tempfile.mkdtemp(prefix="ctx-", dir=work))
    started_at = time.monotonic()
    try:
        received = await receive(request, ctx)
    except BaseException:
        _discard(ctx)
        raise
    took = time.monotonic() - started_at
    try:
        try:
            image_id = await blocking(lambda: run(received, took))
        finally:
            await progress.close()
        await started()
        if quiet:
            await lines.asend({"stream": image_id + "\n"})
    except StepFailed as exc:
        await started()
        await lines.asend({"errorDetail": {"code": exc.code, "message": str(exc)}, "error": str(exc)})
    except BerthError as exc:
        if not progress.used and not resp.prepared:
            raise
        await started()
        await lines.error(str(exc))
    except Exception as exc:   # a bug: the client still gets an error item, the log the traceback
        if not progress.used and not resp.prepared:
            raise
        log.exception("build failed")
        await started()
        await lines.error(f"internal error in berthd's builder: {exc}")
    await resp.write_eof()
    return resp


class _Progress:
    """The build's stream items from its worker thread, written by the event loop in batches. The thread never
    waits for a write: a round trip to the loop per item (some 35 for a cached build) is a scheduling delay each
    on a busy machine. Items keep their order; `flush` (on the loop) writes everything put so far."""

    def __init__(self, loop: asyncio.AbstractEventLoop, started: Callable[[], Awaitable[None]],
                 resp: web.StreamResponse) -> None:
        self._loop, self._started, self._resp = loop, started, resp
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._signalled = False
        self.used = False     # an item was put: the response is (about to be) under way
        self._closing = False
        self._task = loop.create_task(self._run())

    def put(self, item: dict[str, Any]) -> None:
        """From any thread."""
        data = json.dumps(item).encode() + b"\r\n"
        with self._lock:
            self._pending.append(data)
            self.used = True
            if self._signalled:
                return
            self._signalled = True
        self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                self._signalled = False
            if batch:
                await self._started()
                await self._resp.write(b"".join(batch))

    async def close(self) -> None:
        """Write what is left and stop (never cancelled half way through a write)."""
        self._closing = True
        self._wake.set()
        await self._task
        await self.flush()


def _discard(ctx: Path) -> None:
    """Remove a build's context directory: at once when nothing was materialized in it, else in a thread after
    the client has its answer (removing a big tree costs as much as writing it; a crash before it is done leaves
    a ctx- directory that the next start removes)."""
    try:
        ctx.rmdir()
    except OSError:
        threading.Thread(target=shutil.rmtree, args=(ctx,), kwargs={"ignore_errors": True},
                         name="build-context-cleanup", daemon=True).start()


async def receive(request: web.Request, dest: Path) -> Context:
    """The request body as a build context. A plain tar (what the docker CLI, docker-py and berth send) is
    indexed and hashed right here on the event loop, piece by piece as it arrives (sha256 runs at memory speed,
    about 0.1 ms for aiohttp's 256 KiB pieces): no thread hand-off per read. A compressed body is decompressed
    in a worker thread and fed to the same parser."""
    content = request.content
    head = b""
    while len(head) < 6:
        more = await content.readany()
        if not more:
            break
        head += more
    if compressed(head):
        body = cast(BinaryIO, BodyReader(request, asyncio.get_running_loop()))
        return await blocking(lambda: receive_context(body, dest, DEFAULT_CONTEXT_LIMIT, head=head))
    intake = ContextIntake(dest, DEFAULT_CONTEXT_LIMIT)
    try:
        intake.feed(head)
        while chunk := await content.readany():
            intake.feed(chunk)
        return intake.finish()
    except BaseException:
        intake.abort()
        raise
