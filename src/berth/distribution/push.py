"""Pushing: every blob of an image (layers, then config) unless the registry has it, then the manifest.

Per blob: HEAD (exists?) -> a cross-repository mount when the caller knows a repository of the same registry
that has it (POST ...?mount=<digest>&from=<repo>; 201 = done) -> an upload: monolithic (one PUT with the body)
or chunked (PATCH with Content-Range per chunk, then PUT ?digest=). The manifest goes last, as stored or
converted to Docker or OCI media types (`--format`); the digest the registry answers must be ours.
May import: berth.distribution, berth.content, berth.oci, berth.errors, aiohttp.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import BinaryIO

from yarl import URL

from berth.content.protocols import BlobReader
from berth.distribution.auth import repository_scope
from berth.distribution.client import Registry, raise_for
from berth.distribution.progress import Progress, ProgressSink, Step, ignore
from berth.distribution.pull import _unique
from berth.errors import DigestMismatch, InvalidArgument, Unavailable
from berth.oci.descriptor import Descriptor
from berth.oci.digest import Digest
from berth.oci.manifest import Manifest
from berth.oci.mediatype import MediaType
from berth.oci.reference import Reference

READ_CHUNK = 1 << 20
PROGRESS_STEP = 512 << 10


class Format(StrEnum):
    DOCKER = "docker"
    OCI = "oci"

    @classmethod
    def parse(cls, text: str) -> Format:
        try:
            return cls(text.lower())
        except ValueError:
            raise InvalidArgument(f"invalid manifest format {text!r}: expected 'docker' or 'oci'") from None


_TO_DOCKER = {MediaType.OCI_MANIFEST: MediaType.DOCKER_MANIFEST, MediaType.OCI_CONFIG: MediaType.DOCKER_CONFIG,
              MediaType.OCI_LAYER: MediaType.DOCKER_LAYER, MediaType.OCI_LAYER_GZIP: MediaType.DOCKER_LAYER_GZIP,
              MediaType.OCI_LAYER_NONDIST_GZIP: MediaType.DOCKER_LAYER_FOREIGN_GZIP}
_TO_OCI = {MediaType.DOCKER_MANIFEST: MediaType.OCI_MANIFEST, MediaType.DOCKER_CONFIG: MediaType.OCI_CONFIG,
           MediaType.DOCKER_LAYER: MediaType.OCI_LAYER, MediaType.DOCKER_LAYER_GZIP: MediaType.OCI_LAYER_GZIP,
           MediaType.DOCKER_LAYER_FOREIGN_GZIP: MediaType.OCI_LAYER_NONDIST_GZIP}


def convert(manifest: Manifest, fmt: Format) -> Manifest:
    """The same image described with Docker v2 schema 2 or OCI media types (blobs unchanged)."""
    table = _TO_DOCKER if fmt is Format.DOCKER else _TO_OCI

    def conv(mt: MediaType) -> MediaType:
        if fmt is Format.DOCKER and mt in (MediaType.OCI_LAYER_ZSTD, MediaType.OCI_LAYER_NONDIST_ZSTD):
            raise InvalidArgument("a zstd-compressed layer has no Docker v2 schema 2 media type; push with "
                                  "--format oci")
        return table.get(mt, mt)

    if fmt is Format.DOCKER and (manifest.subject is not None or manifest.artifact_type):
        raise InvalidArgument("a manifest with a subject or an artifact type cannot be written in Docker format")
    return replace(manifest, media_type=conv(manifest.media_type),
                   config=replace(manifest.config, media_type=conv(manifest.config.media_type)),
                   layers=tuple(replace(d, media_type=conv(d.media_type)) for d in manifest.layers))


@dataclass(frozen=True, slots=True)
class PushResult:
    reference: Reference
    digest: Digest
    size: int
    media_type: MediaType


class Pusher:
    def __init__(self, registry: Registry, blobs: BlobReader, on_progress: ProgressSink = ignore,
                 parallel: int = 3, chunk_size: int | None = None) -> None:
        self._registry = registry
        self._blobs = blobs
        self._report = on_progress
        self._parallel = asyncio.Semaphore(parallel)
        self._chunk_size = chunk_size   # None: monolithic uploads

    def _scopes(self, path: str, mount_from: Sequence[str] = ()) -> list[str]:
        return [repository_scope(path, ["pull", "push"]), *(repository_scope(m, ["pull"]) for m in mount_from)]

    async def push(self, ref: Reference, manifest_digest: Digest, fmt: Format | None = None,
                   mount_from: Sequence[str] = ()) -> PushResult:
        """Push the image whose manifest is `manifest_digest` as `ref` (a tag, or a digest reference)."""
        data = await asyncio.to_thread(self._blobs.read_bytes, manifest_digest)
        manifest = Manifest.parse(data)
        if fmt is not None:
            converted = convert(manifest, fmt)
            if converted != manifest:
                manifest, data = converted, converted.to_bytes()
        digest = Digest.of(data)
        if ref.digest is not None and ref.digest != digest:
            raise InvalidArgument(f"cannot push {ref.familiar}: the image's manifest is {digest}")
        mounts = [m for m in mount_from if m != ref.path]
        blobs = _unique([*manifest.layers, manifest.config])
        layers = [d for d in blobs if d != manifest.config]
        for d in reversed(layers):
            self._report(Progress(Step.PREPARING, d.digest.short))
        for d in reversed(layers[3:]):
            self._report(Progress(Step.WAITING, d.digest.short))
        tasks = [asyncio.create_task(self._push_blob(ref.path, d, mounts, report=d != manifest.config))
                 for d in blobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        target = str(ref.digest) if ref.digest is not None else ref.tag
        url = self._registry.repo_url(ref.path, "manifests", target)
        headers = {"Content-Type": str(manifest.media_type)}
        async with await self._registry.request("PUT", url, self._scopes(ref.path), headers=headers,
                                                data=data) as resp:
            if resp.status not in (200, 201, 202):
                await raise_for(resp, f"manifest for {ref.familiar}")
            answered = resp.headers.get("Docker-Content-Digest", "")
        if answered and answered != str(digest):
            raise DigestMismatch(f"registry {self._registry.endpoint.host} stored the manifest of {ref.familiar} "
                                 f"as {answered}, but its content is {digest}")
        return PushResult(ref, digest, len(data), manifest.media_type)

    async def _push_blob(self, path: str, desc: Descriptor, mounts: Sequence[str], report: bool) -> None:
        short = desc.digest.short
        async with self._parallel:
            scopes = self._scopes(path, mounts)
            if await self.blob_exists(path, desc.digest, scopes):
                if report:
                    self._report(Progress(Step.LAYER_EXISTS, short))
                return
            location: URL | None = None
            for source in mounts:
                url = self._registry.repo_url(path, "blobs", "uploads", "").with_query(
                    {"mount": str(desc.digest), "from": source})
                async with await self._registry.request("POST", url, scopes) as resp:
                    if resp.status == 201:
                        if report:
                            self._report(Progress(Step.MOUNTED, short, detail=source))
                        return
                    if resp.status == 202 and "Location" in resp.headers:
                        location = resp.url.join(URL(resp.headers["Location"]))
                        break
                    if resp.status >= 400:
                        await raise_for(resp, f"mount of blob {desc.digest} from {source}")
            if location is None:
                location = await self._start_upload(path, desc, scopes)
            await self._upload(location, desc, scopes, report)
            if report:
                self._report(Progress(Step.PUSHED, short))

    async def blob_exists(self, path: str, digest: Digest, scopes: Sequence[str]) -> bool:
        url = self._registry.repo_url(path, "blobs", str(digest))
        async with await self._registry.request("HEAD", url, scopes) as resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            await raise_for(resp, f"blob {digest} in {path}")
        return False

    async def _start_upload(self, path: str, desc: Descriptor, scopes: Sequence[str]) -> URL:
        url = self._registry.repo_url(path, "blobs", "uploads", "")
        async with await self._registry.request("POST", url, scopes) as resp:
            if resp.status != 202 or "Location" not in resp.headers:
                await raise_for(resp, f"upload of blob {desc.digest} to {path}")
                raise Unavailable(f"registry answered {resp.status} without a Location to start an upload")
            return resp.url.join(URL(resp.headers["Location"]))

    async def _upload(self, location: URL, desc: Descriptor, scopes: Sequence[str], report: bool) -> None:
        f = await asyncio.to_thread(self._blobs.open, desc.digest)
        try:
            if self._chunk_size is None:
                final = location.update_query({"digest": str(desc.digest)})
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}
                body = self._body(f, desc, 0, desc.size, report)
                async with await self._registry.request("PUT", final, scopes, headers=headers, data=body,
                                                        replayable=False) as resp:
                    if resp.status not in (201, 204):
                        await raise_for(resp, f"upload of blob {desc.digest}")
                return
            offset = 0
            while offset < desc.size:
                n = min(self._chunk_size, desc.size - offset)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(n),
                           "Content-Range": f"{offset}-{offset + n - 1}"}
                body = self._body(f, desc, offset, n, report)
                async with await self._registry.request("PATCH", location, scopes, headers=headers, data=body,
                                                        replayable=False) as resp:
                    if resp.status != 202:
                        await raise_for(resp, f"upload of blob {desc.digest} (bytes {offset}-{offset + n - 1})")
                    if "Location" in resp.headers:
                        location = resp.url.join(URL(resp.headers["Location"]))
                offset += n
            final = location.update_query({"digest": str(desc.digest)})
            async with await self._registry.request("PUT", final, scopes, headers={"Content-Length": "0"},
                                                    replayable=False) as resp:
                if resp.status not in (201, 204):
                    await raise_for(resp, f"upload of blob {desc.digest}")
        finally:
            await asyncio.to_thread(f.close)

    async def _body(self, f: BinaryIO, desc: Descriptor, offset: int, length: int,
                    report: bool) -> AsyncIterator[bytes]:
        sent = 0
        reported = 0
        while sent < length:
            chunk = await asyncio.to_thread(_pread, f, min(READ_CHUNK * 4, length - sent), offset + sent)
            if not chunk:
                raise Unavailable(f"blob {desc.digest} ended after {offset + sent} of its {desc.size} bytes")
            sent += len(chunk)
            yield chunk
            if report and (sent - reported >= PROGRESS_STEP or sent == length):
                reported = sent
                self._report(Progress(Step.PUSHING, desc.digest.short, offset + sent, desc.size))


def _pread(f: BinaryIO, n: int, pos: int) -> bytes:
    return os.pread(f.fileno(), n, pos)
