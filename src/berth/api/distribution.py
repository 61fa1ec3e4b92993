"""Registry endpoints: pull (`POST /images/create?fromImage=`), push (`POST /images/{name}/push`), `POST /auth`.

The glue between the registry client (berth.distribution) and the image service: a pull fetches blobs under a
lease, then `register_manifest` unpacks and tags; progress is Docker's JSON-lines stream. Registry settings
(insecure registries, certs.d) come from `app[REGISTRY_HOSTS]` when the daemon sets it, else the defaults.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from aiohttp import web

from berth.api.app import Router, engine_of, json_response, log, prepare_headers
from berth.api.streams import JsonLines
from berth.content.leases import Lease
from berth.distribution.client import Registry
from berth.distribution.credentials import AuthConfig, decode_registry_auth, server_key
from berth.distribution.hosts import RegistryHosts
from berth.distribution.progress import Progress, Step
from berth.distribution.pull import FetchedManifest, Puller, PullResult, list_tags
from berth.distribution.push import Format, Pusher
from berth.engine.engine import Engine
from berth.errors import BerthError, InvalidArgument, NotFound, Unavailable
from berth.oci.config import ImageConfig
from berth.oci.descriptor import Descriptor, Platform
from berth.oci.digest import Digest
from berth.oci.manifest import Manifest
from berth.oci.reference import DEFAULT_DOMAIN, Reference

REGISTRY_HOSTS = web.AppKey("registry_hosts", RegistryHosts)
_DEFAULT_HOSTS = RegistryHosts.create()
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def registry_hosts(request: web.Request) -> RegistryHosts:
    return request.app.get(REGISTRY_HOSTS) or _DEFAULT_HOSTS


def registry_auth(request: web.Request) -> AuthConfig:
    return decode_registry_auth(request.headers.get("X-Registry-Auth", ""))


# -- Docker's progress JSON -------------------------------------------------------------------------------

def human_size(n: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits (211B, 1.065MB)."""
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{_UNITS[i]}"


def progress_bar(current: int, total: int) -> str:
    """jsonmessage.JSONProgress.String() at the daemon's width: `[===>   ]  1.5MB/3MB`."""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    numbers = f"{human_size(current):>8}/{human_size(total)}" if current <= total else f"{human_size(current):>8}"
    return f"[{'=' * filled}>{' ' * (50 - filled)}] {numbers}"


def progress_message(p: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"status": p.status, "progressDetail": {}}
    if p.current is not None and p.total is not None and p.step in (Step.DOWNLOADING, Step.PUSHING,
                                                                      Step.EXTRACTING):
        out["progressDetail"] = {"current": p.current, "total": p.total}
        out["progress"] = progress_bar(p.current, p.total)
    out["id"] = p.id
    return out


class GoJsonLines:
    """JSON lines encoded as Go's encoding/json does (<, >, & escaped), so the bytes match dockerd's."""

    def __init__(self, lines: JsonLines, resp: web.StreamResponse) -> None:
        self._lines = lines
        self._resp = resp

    async def send(self, item: dict[str, Any]) -> None:
        text = json.dumps(item, separators=(",", ":"))
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        await self._resp.write(text.encode() + b"\r\n")

    async def error(self, message: str) -> None:
        await self.send({"errorDetail": {"message": message}, "error": message})


async def _stream(request: web.Request) -> tuple[web.StreamResponse, GoJsonLines]:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    prepare_headers(resp)
    await resp.prepare(request)
    return resp, GoJsonLines(JsonLines(resp, asyncio.get_running_loop()), resp)


class ProgressLines:
    """A progress sink for code on the event loop: events are written in order by one task."""

    def __init__(self, lines: GoJsonLines) -> None:
        self._lines = lines
        self._queue: asyncio.Queue[Progress | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self._lines.send(progress_message(item))

    def put(self, item: Progress) -> None:
        self._queue.put_nowait(item)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await asyncio.gather(self._task, return_exceptions=True)


class GrowingFile(io.RawIOBase):
    """Reads a partial download while it grows, until `size` bytes; a reader of it waits for more bytes unless
    the blob is committed (then what is there is all) or the pull is aborted (then it fails)."""

    def __init__(self, path: Path, size: int, committed: threading.Event, aborted: Callable[[], bool]) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self._size = size
        self._pos = 0
        self._committed = committed
        self._aborted = aborted

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        while want > 0:
            n = self._f.readinto(view[:want]) or 0
            if n:
                self._pos += n
                return n
            if self._aborted():
                raise Unavailable("the download of this layer was abandoned")
            if self._committed.is_set():
                n = self._f.readinto(view[:want]) or 0   # the last bytes landed just before the commit
                self._pos += n
                return n
            self._committed.wait(0.01)
        return 0

    def close(self) -> None:
        self._f.close()
        super().close()


class LayerUnpacker:
    """Unpacks a pulled image's layers as their blobs arrive, in parallel (the snapshotter extracts a layer before
    its parent is there and waits for the parent only to commit).

    Only an optimisation: each blob it unpacks is committed (verified) already and the snapshotter checks the
    diff_id; any failure here just leaves the layer to register_manifest, which unpacks whatever is missing and
    reports errors.
    """

    def __init__(self, engine: Engine, manifest: Manifest) -> None:
        self._engine = engine
        self._manifest = manifest
        self._config: ImageConfig | None = None
        self._done = [threading.Event() for _ in manifest.layers]
        self._ok = [False] * len(manifest.layers)
        self._aborted = False
        self._tasks: list[asyncio.Future[None]] = []
        self._started: set[Digest] = set()
        # Its own threads: unpackers block waiting for bytes and parents, which the shared pool's threads (that
        # write those bytes) must never wait behind.
        self._pool = ThreadPoolExecutor(max(1, len(manifest.layers)), thread_name_prefix="berth-pull-unpack")
        self._committed: dict[Digest, threading.Event] = {}

    def _chain(self) -> tuple[ImageConfig, list[Digest]] | None:
        try:
            if self._config is None:
                self._config = ImageConfig.parse(self._engine.blobs.read_bytes(self._manifest.config.digest,
                                                                               20 << 20))
        except BerthError:
            self._abort()
            return None
        if len(self._config.diff_ids) != len(self._manifest.layers):
            self._abort()
            return None
        return self._config, self._config.chain_ids

    def _start(self, digest: Digest, source: Callable[[], BinaryIO]) -> None:
        found = self._chain()
        if found is None or digest in self._started:
            return
        self._started.add(digest)
        config, chain = found
        for i, layer in enumerate(self._manifest.layers):
            if layer.digest == digest:
                self._tasks.append(asyncio.get_running_loop().run_in_executor(
                    self._pool, self._unpack, i, chain[i], chain[i - 1] if i else None, source, config.diff_ids[i]))

    def layer_downloading(self, desc: Descriptor, partial: Path) -> None:
        """Unpack from the partial file as it grows (the diff_id check covers bytes not yet verified)."""
        committed = self._committed.setdefault(desc.digest, threading.Event())
        self._start(desc.digest, lambda: cast(BinaryIO, GrowingFile(partial, desc.size, committed,
                                                                    lambda: self._aborted)))

    def layer_ready(self, digest: Digest) -> None:
        self._committed.setdefault(digest, threading.Event()).set()
        self._start(digest, lambda: self._engine.blobs.open(digest))

    def _wait_parent(self, i: int) -> None:
        self._done[i - 1].wait()
        if self._aborted or not self._ok[i - 1]:
            raise Unavailable("the parent layer was not unpacked")

    def _unpack(self, i: int, chain_id: Digest, parent: Digest | None, source: Callable[[], BinaryIO],
                diff_id: Digest) -> None:
        try:
            if self._aborted:
                return
            with source() as f:
                self._engine.snapshots.unpack(chain_id, parent, f, None, diff_id,
                                              wait_parent=(lambda: self._wait_parent(i)) if i else None)
            self._ok[i] = True
        except BerthError as exc:
            log.info("early unpack of layer %s stopped (register_manifest takes over): %s", chain_id, exc)
        finally:
            self._done[i].set()

    def _abort(self) -> None:
        self._aborted = True
        for event in [*self._done, *self._committed.values()]:
            event.set()   # no unpack waits for a parent that will not come

    async def finish(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False)

    async def cancel(self) -> None:
        self._abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False)


# -- pull -------------------------------------------------------------------------------------------------

def pull_reference(from_image: str, tag: str) -> tuple[Reference, bool]:
    """The reference a `fromImage`/`tag` pair names, and whether every tag is wanted (`pull -a`)."""
    base = Reference.parse(from_image, default_tag=False)
    if tag:
        if Digest.is_valid(tag):
            return base.with_digest(Digest.parse(tag)), False
        return base.with_tag(tag), False
    if base.tag or base.digest is not None:
        return base, False
    return base, True


def _up_to_date(engine: Engine, ref: Reference, manifest: Digest, repo_digest: Digest) -> bool:
    try:
        rec = engine.images.resolve(str(ref))
    except (NotFound, InvalidArgument):
        return False
    if ref.digest is not None:
        return f"{ref.name}@{repo_digest}" in rec.repo_digests
    return rec.manifest == manifest and str(ref) in rec.tags


async def pull_image(request: web.Request) -> web.StreamResponse:
    """`POST /images/create?fromImage=…&tag=…[&platform=…]` with `X-Registry-Auth`."""
    engine = engine_of(request)
    ref, all_tags = pull_reference(request.query.get("fromImage", ""), request.query.get("tag", ""))
    platform_text = request.query.get("platform", "")
    platform = Platform.parse(platform_text) if platform_text else None
    async with Registry(registry_hosts(request), ref.domain, registry_auth(request)) as registry:
        await registry.ping()
        refs = [ref.with_tag(t) for t in await list_tags(registry, ref.path)] if all_tags else [ref]
        if not refs:
            raise NotFound(f"repository {ref.familiar_name} has no tags")
        with engine.blobs.lease() as lease:
            puller_probe = Puller(registry, engine.blobs, lease)
            # Resolve before answering 200: a missing tag is a 404, as dockerd answers it.
            first = await puller_probe.resolve(refs[0], platform)
            resp, lines = await _stream(request)
            try:
                await lines.send({"status": f"Pulling from {ref.path}",
                                  "id": "all tags" if all_tags else (str(ref.digest) if ref.digest else ref.tag)})
                newest = False
                for i, one in enumerate(refs):
                    resolved = first if i == 0 else None
                    newest |= await _pull_one(engine, registry, lease, one, platform, lines, resolved,
                                              announce=not all_tags)
                if all_tags:
                    word = "Downloaded newer image" if newest else "Image is up to date"
                    await lines.send({"status": f"Status: {word} for {ref.familiar_name}"})
            except Exception as exc:  # after the 200 every failure is an error line, as dockerd sends it
                if not isinstance(exc, BerthError):
                    log.exception("pull of %s failed", ref)
                lease.release()
                await asyncio.to_thread(engine.images.collect_garbage)
                await lines.error(str(exc))
            await resp.write_eof()
            return resp


async def _pull_one(engine: Engine, registry: Registry, lease: Lease, ref: Reference,
                    platform: Platform | None, lines: GoJsonLines,
                    resolved: tuple[FetchedManifest, Digest] | None, announce: bool) -> bool:
    sink = ProgressLines(lines)
    unpacker: LayerUnpacker | None = None
    try:
        fetched, repo_digest = resolved if resolved is not None else \
            await Puller(registry, engine.blobs, lease).resolve(ref, platform)
        up_to_date = _up_to_date(engine, ref, fetched.digest, repo_digest)
        unpacker = LayerUnpacker(engine, Manifest.parse(fetched.data))
        puller = Puller(registry, engine.blobs, lease, sink.put, on_layer=unpacker.layer_ready,
                        on_download=unpacker.layer_downloading)
        result: PullResult = await puller.fetch(ref, fetched, repo_digest, platform)
        await unpacker.finish()
    except BaseException:
        if unpacker is not None:
            await unpacker.cancel()
        raise
    finally:
        await sink.close()
    tags = [ref] if ref.digest is None else []
    await asyncio.to_thread(engine.images.register_manifest, result.manifest, tags,
                            f"{ref.name}@{result.repo_digest}")
    engine.events.image("pull", ref.familiar, ref.familiar_name)
    for layer in result.downloaded:
        await lines.send(progress_message(Progress(Step.PULL_COMPLETE, layer.short)))
    await lines.send({"status": f"Digest: {result.repo_digest}"})
    if announce:
        word = "Image is up to date" if up_to_date else "Downloaded newer image"
        await lines.send({"status": f"Status: {word} for {ref.familiar}"})
    return not up_to_date


# -- push -------------------------------------------------------------------------------------------------

def _local_tags(engine: Engine, ref: Reference) -> list[Reference]:
    out = []
    for rec in engine.records.all():
        for tag in rec.tags:
            r = Reference.parse(tag)
            if r.name == ref.name:
                out.append(r)
    return sorted(out, key=lambda r: r.tag)


async def push_image(request: web.Request) -> web.StreamResponse:
    """`POST /images/{name}/push?tag=…` with `X-Registry-Auth`; berth's `format=docker|oci` converts."""
    engine = engine_of(request)
    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    fmt_text = request.query.get("format", "")
    fmt = Format.parse(fmt_text) if fmt_text else None
    base = Reference.parse(name, default_tag=False)
    if tag:
        targets = [base.with_digest(Digest.parse(tag)) if Digest.is_valid(tag) else base.with_tag(tag)]
    elif base.tag or base.digest is not None:
        targets = [base]
    else:
        targets = _local_tags(engine, base)
    if not targets:
        raise NotFound(f"An image does not exist locally with the tag: {base.familiar_name}")
    records = [engine.images.resolve(str(t)) for t in targets]   # 404 before the stream starts
    async with Registry(registry_hosts(request), base.domain, registry_auth(request)) as registry:
        resp, lines = await _stream(request)
        try:
            await registry.ping()
            await lines.send({"status": f"The push refers to repository [{base.familiar_name}]"})
            for target, rec in zip(targets, records, strict=True):
                mounts = [Reference.parse(d).path for d in rec.repo_digests if Reference.parse(d).domain ==
                          base.domain]
                sink = ProgressLines(lines)
                try:
                    result = await Pusher(registry, engine.blobs, sink.put).push(target, rec.manifest, fmt, mounts)
                finally:
                    await sink.close()
                if result.digest == rec.manifest:
                    await asyncio.to_thread(engine.records.add, rec.id, rec.manifest, [],
                                            None, f"{target.name}@{result.digest}")
                engine.events.image("push", target.familiar, target.familiar_name)
                label = target.tag or str(target.digest)
                await lines.send({"status": f"{label}: digest: {result.digest} size: {result.size}"})
                await lines.send({"progressDetail": {}, "aux": {"Tag": label, "Digest": str(result.digest),
                                                                "Size": result.size}})
        except Exception as exc:
            if not isinstance(exc, BerthError):
                log.exception("push of %s failed", base)
            await lines.error(str(exc))
        await resp.write_eof()
        return resp


# -- auth -------------------------------------------------------------------------------------------------

def _login_host(address: str) -> str:
    key = server_key(address or DEFAULT_DOMAIN)
    return DEFAULT_DOMAIN if key.startswith("https://index.docker.io") else key


async def check_auth(request: web.Request) -> web.Response:
    """`POST /auth` {"username","password","serveraddress"}: check the credentials against the registry."""
    try:
        raw = await request.json()
    except ValueError as exc:
        raise InvalidArgument(f"invalid /auth body: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid /auth body: expected a JSON object")
    auth = AuthConfig.from_json(raw)
    host = _login_host(auth.server_address)
    async with Registry(registry_hosts(request), host, auth) as registry:
        token = await registry.check_login()
    return json_response({"IdentityToken": token, "Status": "Login Succeeded"})


def register(router: Router) -> None:
    router.add("POST", "/images/{name:.+}/push", push_image)
    router.add("POST", "/auth", check_auth)
