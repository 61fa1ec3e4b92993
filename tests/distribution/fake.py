"""A small, misbehaving-on-request registry for tests (aiohttp, in-process), and a token server.

It serves what a test puts in it, records every request's headers, and can lie: wrong blob bytes, a wrong
Docker-Content-Digest, truncated bodies, redirects of blobs to another host (`127.0.0.2`), Basic or Bearer auth.
The happy paths are tested against Debian's docker-registry (registry.py); this one exists for the failures a
real registry will not produce on demand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Seen:
    method: str
    path: str
    headers: Mapping[str, str]


@dataclass
class Behaviour:
    corrupt: set[str] = field(default_factory=set)          # blob digests served with other bytes
    truncate: dict[str, int] = field(default_factory=dict)  # digest -> times to cut the body in half
    ignore_range: bool = False
    lie_manifest_digest: bool = False                        # a wrong Docker-Content-Digest header
    redirect_blobs_to: str = ""                              # base URL of another server
    blob_delay: float = 0.0


class FakeRegistry:
    def __init__(self, host: str = "127.0.0.1", auth: str = "", users: Mapping[str, str] | None = None,
                 token_realm: str = "", token_ttl: int = 60) -> None:
        self.host = host
        self.auth = auth                    # "", "basic", "bearer"
        self.users = dict(users or {})
        self.token_realm = token_realm      # defaults to this server's /token
        self.token_ttl = token_ttl
        self.tokens: dict[str, tuple[str, float]] = {}   # token -> (account, expiry)
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.behaviour = Behaviour()
        self.seen: list[Seen] = []
        self.token_requests: list[Seen] = []
        self.blob_gets: dict[str, int] = {}
        self.uploads: dict[str, bytearray] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- content ------------------------------------------------------------------------------------------

    def add_blob(self, data: bytes) -> dict[str, Any]:
        self.blobs[sha(data)] = data
        return {"digest": sha(data), "size": len(data)}

    def add_manifest(self, repo: str, tag: str | None, data: bytes, media_type: str) -> str:
        digest = sha(data)
        self.manifests[(repo, digest)] = (data, media_type)
        if tag:
            self.manifests[(repo, tag)] = (data, media_type)
        return digest

    def add_image(self, repo: str, tag: str | None, layers: list[bytes], arch: str = "amd64",
                  layer_type: str = OCI_LAYER_GZIP, diff_ids: list[str] | None = None) -> str:
        """An image whose layers are served as given (the tests pass gzip/zstd/plain tars)."""
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(b) for b in layers]},
                             "config": {"Cmd": ["sh"]}}).encode()
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, **self.add_blob(config)},
                    "layers": [{"mediaType": layer_type, **self.add_blob(b)} for b in layers]}
        return self.add_manifest(repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)

    # -- serving ------------------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeRegistry:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_get("/token", self._token)
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _challenge(self) -> str:
        if self.auth == "basic":
            return 'Basic realm="fake"'
        realm = self.token_realm or f"http://{self.address}/token"
        return f'Bearer realm="{realm}",service="fake-registry"'

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "basic":
            if not header.startswith("Basic "):
                return False
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            return self.users.get(user) == pw
        if self.auth == "bearer":
            token = header.removeprefix("Bearer ")
            entry = self.tokens.get(token)
            return entry is not None and entry[1] > time.time()
        return True

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests.append(Seen(request.method, request.path_qs, dict(request.headers)))
        header = request.headers.get("Authorization", "")
        account = ""
        if header.startswith("Basic "):
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(user) != pw:
                return web.Response(status=401, text="bad credentials")
            account = user
        elif self.auth == "bearer" and self.users and not request.query.get("scope"):
            return web.Response(status=401, text="login needs credentials")
        token = secrets.token_hex(8)
        self.tokens[token] = (account, time.time() + self.token_ttl)
        if self.users and not account:
            self.tokens.pop(token)   # anonymous tokens of a private registry do not open anything
            token = "anonymous-" + token
        return web.json_response({"token": token, "expires_in": self.token_ttl})

    async def _route(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers)))
        path = request.path
        if not path.startswith("/v2/"):
            return web.Response(status=404)
        if not self._authorized(request):
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                     status=401, headers={"WWW-Authenticate": self._challenge()})
        if path == "/v2/":
            return web.json_response({})
        rest = path[len("/v2/"):]
        if "/manifests/" in rest:
            repo, _, ref = rest.rpartition("/manifests/")
            return await self._manifest(request, repo, ref)
        if "/blobs/uploads/" in rest:
            return await self._upload(request, rest)
        if "/blobs/" in rest:
            repo, _, digest = rest.rpartition("/blobs/")
            return await self._blob(request, digest)
        return web.Response(status=404)

    async def _manifest(self, request: web.Request, repo: str, ref: str) -> web.Response:
        if request.method == "PUT":
            data = await request.read()
            digest = self.add_manifest(repo, None if ref.startswith("sha256:") else ref, data,
                                       request.headers.get("Content-Type", ""))
            return web.Response(status=201, headers={"Docker-Content-Digest": digest})
        found = self.manifests.get((repo, ref))
        if found is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                     status=404)
        data, media_type = found
        digest = sha(data)
        if self.behaviour.lie_manifest_digest:
            digest = sha(data + b" ")
        return web.Response(body=data, headers={"Content-Type": media_type, "Docker-Content-Digest": digest})

    async def _blob(self, request: web.Request, digest: str) -> web.StreamResponse:
        data = self.blobs.get(digest)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}, status=404)
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(len(data)), "Docker-Content-Digest": digest})
        if self.behaviour.redirect_blobs_to and not request.query.get("cdn"):
            return web.Response(status=307, headers={
                "Location": f"{self.behaviour.redirect_blobs_to}{request.path}?cdn=1"})
        self.blob_gets[digest] = self.blob_gets.get(digest, 0) + 1
        if digest in self.behaviour.corrupt:
            data = bytes(b ^ 0xFF for b in data)
        start = 0
        status = 200
        headers = {"Content-Type": "application/octet-stream"}
        rng = request.headers.get("Range", "")
        if rng.startswith("bytes=") and not self.behaviour.ignore_range:
            start = int(rng[6:].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        if self.behaviour.blob_delay:
            import asyncio
            await asyncio.sleep(self.behaviour.blob_delay)
        cuts = self.behaviour.truncate.get(digest, 0)
        if cuts:
            self.behaviour.truncate[digest] = cuts - 1
            await resp.write(body[: max(1, len(body) // 2)])
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp

    async def _upload(self, request: web.Request, rest: str) -> web.Response:
        repo, _, uid = rest.partition("/blobs/uploads/")
        if request.method == "POST":
            mount, source = request.query.get("mount"), request.query.get("from")
            if mount and source and mount in self.blobs:
                return web.Response(status=201, headers={"Docker-Content-Digest": mount})
            uid = secrets.token_hex(8)
            self.uploads[uid] = bytearray()
            return web.Response(status=202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}",
                                                     "Range": "0-0", "Docker-Upload-UUID": uid})
        if uid not in self.uploads:
            return web.json_response({"errors": [{"code": "BLOB_UPLOAD_UNKNOWN", "message": "unknown"}]},
                                     status=404)
        self.uploads[uid] += await request.read()
        if request.method == "PATCH":
            return web.Response(status=202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}",
                                                     "Range": f"0-{len(self.uploads[uid]) - 1}"})
        if request.method == "PUT":
            data = bytes(self.uploads.pop(uid))
            if sha(data) != request.query.get("digest"):
                return web.json_response({"errors": [{"code": "DIGEST_INVALID", "message": "digest invalid"}]},
                                         status=400)
            self.blobs[sha(data)] = data
            return web.Response(status=201, headers={"Docker-Content-Digest": sha(data)})
        return web.Response(status=405)
