"""Pulling: resolve a reference to an image manifest (an index picks the platform), fetch config and layers into
the blob store, in parallel, each verified against its digest before it is committed.

Downloads use the blob's digest as the ingest ref: two pulls wanting the same blob at once take turns on its
lock, and the second finds it committed (one download). Partials are resumable: an interrupted download
continues with `Range: bytes=<offset>-`, in this pull (a few retries) or the next. The manifest is committed
last, after every blob it names is in the store; making it an image (unpack, tag) is the image service's job.
May import: berth.distribution, berth.content, berth.oci, berth.errors, aiohttp.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from berth.content.store import BlobStore
from berth.content.writer import BlobWriter, Holder
from berth.distribution.auth import repository_scope
from berth.distribution.client import Registry, raise_for
from berth.distribution.progress import Progress, ProgressSink, Step, ignore
from berth.errors import Corrupt, DigestMismatch, InvalidArgument, LimitExceeded, NotFound, Unavailable
from berth.oci.config import ImageConfig
from berth.oci.descriptor import Descriptor, Platform
from berth.oci.digest import Digest
from berth.oci.manifest import MAX_MANIFEST_BYTES, Index, Manifest, sniff_media_type
from berth.oci.mediatype import MediaType
from berth.oci.reference import Reference

ACCEPT = ", ".join((MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST, MediaType.DOCKER_MANIFEST_LIST,
                    MediaType.OCI_INDEX))
CONFIG_LIMIT = 20 << 20
BATCH = 2 << 20
PROGRESS_EVERY = 0.1
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_RETRYABLE = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
              asyncio.TimeoutError, ConnectionError)


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    data: bytes
    media_type: MediaType
    digest: Digest


@dataclass(frozen=True, slots=True)
class PullResult:
    reference: Reference           # what was asked for
    manifest: Digest               # the image manifest for the chosen platform
    repo_digest: Digest            # what the reference resolved to at the registry (an index for multi-arch)
    config: Digest
    layers: tuple[Descriptor, ...]
    downloaded: tuple[Digest, ...]  # blobs this pull fetched (the others were in the store)


def pull_scopes(path: str) -> list[str]:
    return [repository_scope(path, ["pull"])]


async def fetch_manifest(registry: Registry, path: str, reference: str | Digest) -> FetchedManifest:
    """GET a manifest or index by tag or digest, verified: by digest, its bytes must hash to it; by tag, to the
    Docker-Content-Digest the registry claims (when it sends one). Over 4 MiB is refused."""
    what = f"manifest for {registry.endpoint.host}/{path}{'@' if isinstance(reference, Digest) else ':'}{reference}"
    url = registry.repo_url(path, "manifests", str(reference))
    async with await registry.request("GET", url, pull_scopes(path), headers={"Accept": ACCEPT}) as resp:
        if resp.status != 200:
            await raise_for(resp, what)
        declared = resp.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
            raise LimitExceeded(f"{what} is {declared} bytes, over the {MAX_MANIFEST_BYTES}-byte limit for "
                                f"manifests; refused")
        try:
            data = await resp.content.read(MAX_MANIFEST_BYTES + 1)
            while len(data) <= MAX_MANIFEST_BYTES and (more := await resp.content.read(MAX_MANIFEST_BYTES + 1
                                                                                         - len(data))):
                data += more
        except _RETRYABLE as exc:
            raise Unavailable(f"{what}: download failed: {exc}") from exc
        if len(data) > MAX_MANIFEST_BYTES:
            raise LimitExceeded(f"{what} is over the {MAX_MANIFEST_BYTES}-byte limit for manifests; refused")
        claimed = resp.headers.get("Docker-Content-Digest", "")
        content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
    actual = Digest.of(data)
    expected = reference if isinstance(reference, Digest) else (Digest.parse(claimed) if Digest.is_valid(claimed)
                                                              else None)
    if expected is not None and actual != expected:
        raise DigestMismatch(f"{what}: the manifest's content hashes to {actual}, not {expected}; refused")
    try:
        media_type = MediaType.parse(content_type)
        if not (media_type.is_manifest or media_type.is_index):
            raise InvalidArgument(content_type)
    except InvalidArgument:
        media_type = sniff_media_type(data)
    return FetchedManifest(data, media_type, actual)


async def list_tags(registry: Registry, path: str) -> list[str]:
    """Every tag of a repository, following `Link` pagination."""
    url = registry.repo_url(path, "tags", "list")
    tags: list[str] = []
    for _page in range(10_000):
        async with await registry.request("GET", url, pull_scopes(path)) as resp:
            if resp.status != 200:
                await raise_for(resp, f"tags of {registry.endpoint.host}/{path}")
            raw = await resp.json(content_type=None)
            link = resp.headers.get("Link", "")
        found = raw.get("tags") if isinstance(raw, dict) else None
        tags.extend(str(t) for t in found or [])
        m = re.match(r"\s*<([^>]+)>\s*;\s*rel=\"?next\"?", link)
        if not m:
            break
        url = url.join(URL(m.group(1)))
    return tags


class Puller:
    """Pulls images of one registry into a blob store; the lease keeps what it fetches from gc."""

    def __init__(self, registry: Registry, blobs: BlobStore, lease: Holder, on_progress: ProgressSink = ignore,
                 parallel: int = 3, attempts: int = 4, retry_delay: float = 0.2,
                 on_layer: Callable[[Digest], None] | None = None,
                 on_download: Callable[[Descriptor, Path], None] | None = None) -> None:
        """`on_layer` is told (on the event loop) each time a layer blob is in the store, verified, and
        `on_download` when a layer's download starts, with the partial file it grows in: so that the caller can
        unpack a layer while it downloads (checking its diff_id) and layers while the ones above them download."""
        self._on_layer = on_layer or (lambda _: None)
        self._on_download = on_download or (lambda _d, _p: None)
        self._registry = registry
        self._blobs = blobs
        self._lease = lease
        self._report = on_progress
        self._parallel = asyncio.Semaphore(parallel)
        self._attempts = attempts
        self._retry_delay = retry_delay

    async def resolve(self, ref: Reference, platform: Platform | None) -> tuple[FetchedManifest, Digest]:
        """The image manifest for `ref` (picked from an index for the platform) and the digest `ref` names."""
        top = await fetch_manifest(self._registry, ref.path, ref.digest if ref.digest is not None else ref.tag)
        if top.media_type.is_index:
            want = platform or Platform.host()
            try:
                chosen = Index.parse(top.data).select(want)
            except NotFound as exc:
                raise NotFound(f"{ref.familiar}: {exc}") from exc
            return await fetch_manifest(self._registry, ref.path, chosen.digest), top.digest
        return top, top.digest

    async def pull(self, ref: Reference, platform: Platform | None = None) -> PullResult:
        fetched, repo_digest = await self.resolve(ref, platform)
        return await self.fetch(ref, fetched, repo_digest, platform)

    async def fetch(self, ref: Reference, fetched: FetchedManifest, repo_digest: Digest,
                    platform: Platform | None = None) -> PullResult:
        """Config and layers of a resolved manifest into the store, then the manifest itself."""
        manifest = Manifest.parse(fetched.data)
        if not manifest.is_image:
            raise InvalidArgument(f"{ref.familiar} is not a container image: its config is "
                                  f"{manifest.config.media_type}")
        for layer in manifest.layers:
            if not layer.media_type.is_layer:
                raise InvalidArgument(f"{ref.familiar}: layer {layer.digest} has media type {layer.media_type}, "
                                      f"which is not a layer berth can unpack")
        await self.fetch_blob(ref.path, manifest.config, report=False)
        config = ImageConfig.parse(await asyncio.to_thread(self._blobs.read_bytes, manifest.config.digest,
                                                           CONFIG_LIMIT))
        if len(config.diff_ids) != len(manifest.layers):
            raise Corrupt(f"manifest {fetched.digest} of {ref.familiar} has {len(manifest.layers)} layers but its "
                          f"config lists {len(config.diff_ids)}; refused")
        if platform is not None and not fetched_platform(config).matches(platform):
            raise NotFound(f"image {ref.familiar} was found but its platform {fetched_platform(config)} does not "
                           f"match the requested {platform}")
        present = {d.digest for d in manifest.layers if self._blobs.has(d.digest)}
        for layer in manifest.layers:
            self._report(Progress(Step.ALREADY_EXISTS if layer.digest in present else Step.PULLING_FS_LAYER,
                                  layer.digest.short))
        for digest in present:
            self._on_layer(digest)
        pending = [d for d in _unique(manifest.layers) if d.digest not in present]
        for layer in pending[self._parallel._value:]:
            self._report(Progress(Step.WAITING, layer.digest.short))
        tasks = [asyncio.create_task(self._fetch_layer(ref.path, d)) for d in pending]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        # Every blob is verified and held: now the manifest itself may be committed.
        await asyncio.to_thread(self._blobs.put_bytes, fetched.data, fetched.digest, lease=self._lease)
        downloaded = tuple(d.digest for d, got in zip(pending, results, strict=True) if got)
        return PullResult(ref, fetched.digest, repo_digest, manifest.config.digest, manifest.layers, downloaded)

    async def _fetch_layer(self, path: str, desc: Descriptor) -> bool:
        async with self._parallel:
            got = await self.fetch_blob(path, desc)
        self._report(Progress(Step.DOWNLOAD_COMPLETE, desc.digest.short))
        self._on_layer(desc.digest)
        return got

    async def _open_writer(self, desc: Descriptor, report: bool) -> BlobWriter:
        """The blob's ingest, waiting (without holding a thread) while another pull downloads it."""
        waited = False
        while True:
            try:
                return await asyncio.to_thread(self._blobs.writer, str(desc.digest), desc.digest, desc.size,
                                               resumable=True, wait=False, lease=self._lease)
            except Unavailable:
                if report and not waited:
                    self._report(Progress(Step.WAITING, desc.digest.short))
                waited = True
                await asyncio.sleep(0.05)

    async def fetch_blob(self, path: str, desc: Descriptor, report: bool = True) -> bool:
        """Download one blob into the store unless it is there; True when this call downloaded it."""
        writer = await self._open_writer(desc, report)
        try:
            if writer.exists:
                return False
            if report:
                self._on_download(desc, writer.path)
            await self._download(path, desc, writer, report)
            if report:
                self._report(Progress(Step.VERIFYING, desc.digest.short))
            try:
                await asyncio.to_thread(writer.commit)
            except DigestMismatch as exc:
                raise DigestMismatch(f"blob {desc.digest} from {self._registry.endpoint.host}/{path}: its content "
                                     f"does not match its digest ({exc}); nothing was stored") from exc
            return True
        finally:
            await asyncio.to_thread(writer.close)

    async def _download(self, path: str, desc: Descriptor, writer: BlobWriter, report: bool) -> None:
        url = self._registry.repo_url(path, "blobs", str(desc.digest))
        what = f"blob {desc.digest} of {self._registry.endpoint.host}/{path}"
        last: BaseException | None = None
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._retry_delay * attempt)
            offset = writer.offset
            if offset >= desc.size:
                return
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            async with await self._registry.request("GET", url, pull_scopes(path), headers=headers) as resp:
                if resp.status == 206 and offset:
                    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != offset:
                        await asyncio.to_thread(writer.truncate, 0)  # not the range asked for: start over
                        continue
                elif resp.status == 200:
                    if offset:
                        await asyncio.to_thread(writer.truncate, 0)  # the server ignored Range
                else:
                    await raise_for(resp, what)
                try:
                    await self._copy(resp, desc, writer, report)
                except _RETRYABLE as exc:
                    last = exc
                    continue
            if writer.offset >= desc.size:
                return
            last = None
        got = writer.offset
        raise Unavailable(f"download of {what} was cut short at {got} of {desc.size} bytes after "
                          f"{self._attempts} attempts{f' ({last})' if last else ''}; the partial is kept and "
                          f"the next pull resumes it")

    async def _copy(self, resp: aiohttp.ClientResponse, desc: Descriptor, writer: BlobWriter, report: bool) -> None:
        """Body to the writer in batches; writing batch k (in a thread) overlaps reading batch k+1."""
        parts: list[bytes] = []
        size = 0
        handed = writer.offset
        pending: asyncio.Future[int] | None = None
        last_report = 0.0
        try:
            while True:
                try:
                    chunk = await resp.content.readany()
                except _RETRYABLE:
                    if parts:  # keep what arrived: the retry resumes after it
                        if pending is not None:
                            await pending
                            pending = None
                        await asyncio.to_thread(writer.write, b"".join(parts))
                    raise
                if chunk:
                    parts.append(chunk)
                    size += len(chunk)
                if size >= BATCH or (not chunk and size):
                    data = parts[0] if len(parts) == 1 else b"".join(parts)
                    parts, size = [], 0
                    if handed + len(data) > desc.size:
                        raise Corrupt(f"blob {desc.digest} is longer than the {desc.size} bytes its descriptor "
                                      f"says; refused")
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(writer.write, data))
                    handed += len(data)
                    now = time.monotonic()
                    if report and (now - last_report >= PROGRESS_EVERY or not chunk):
                        last_report = now
                        self._report(Progress(Step.DOWNLOADING, desc.digest.short, handed, desc.size))
                if not chunk:
                    break
        finally:
            if pending is not None:
                await pending


def _unique(descs: tuple[Descriptor, ...] | list[Descriptor]) -> list[Descriptor]:
    """Each blob once (an image may repeat a layer), in order."""
    seen: set[Digest] = set()
    out = []
    for d in descs:
        if d.digest not in seen:
            seen.add(d.digest)
            out.append(d)
    return out


def fetched_platform(config: ImageConfig) -> Platform:
    return Platform(config.os, config.architecture, config.variant or "")


async def pull_image(registry: Registry, blobs: BlobStore, lease: Holder, ref: Reference,
                     platform: Platform | None = None, on_progress: ProgressSink = ignore) -> PullResult:
    """Convenience: one reference from a registry session that is open already."""
    return await Puller(registry, blobs, lease, on_progress).pull(ref, platform)
