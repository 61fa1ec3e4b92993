"""The OCI distribution spec v1.1 over HTTP (aiohttp): routing, the handlers, and the error middleware.

Routes are matched against the raw, still percent-encoded path with the spec's name grammar, so `%2F`,
`..` and other names outside the grammar never reach storage: they get NAME_INVALID. Blobs are served
with sendfile (FileResponse); uploads stream straight into the session's hashing ingest writer.
May import: berth.content, berth.oci, berth.util, berth.errors, aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from berth.errors import Conflict, Corrupt, DigestMismatch, InvalidArgument, LimitExceeded, NotFound, Unavailable
from berth.oci.digest import Digest
from berth.registry.auth import BASE, CATALOG, Access, Authorizer, OpenAccess, TokenAuth
from berth.registry.errors import ErrorCode, RegistryError
from berth.registry.manifests import MAX_MANIFEST_BYTES, parse_manifest
from berth.registry.names import NAME_PATTERN, RepoName, Tag, UploadId
from berth.registry.storage import RegistryStorage, UploadSession, UploadWriter
from berth.registry.uploads import DEFAULT_UPLOAD_TTL, UploadTable

_log = logging.getLogger("berth.registry")
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
MAX_PAGE = 10_000
MAX_N = 1 << 31
CHUNK = 1 << 20

Handler = Callable[[web.Request, "Context"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Context:
    """The parsed path of a /v2/ request."""

    name: RepoName | None
    arg: str


_NAME = NAME_PATTERN
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/v2/?"), "base"),
    (re.compile(r"/v2/_catalog"), "catalog"),
    (re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/?"), "uploads"),
    (re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/(?P<arg>[^/]+)"), "upload"),
    (re.compile(rf"/v2/(?P<name>{_NAME})/blobs/(?P<arg>[^/]+)"), "blob"),
    (re.compile(rf"/v2/(?P<name>{_NAME})/manifests/(?P<arg>[^/]+)"), "manifest"),
    (re.compile(rf"/v2/(?P<name>{_NAME})/tags/list"), "tags"),
    (re.compile(rf"/v2/(?P<name>{_NAME})/referrers/(?P<arg>[^/]+)"), "referrers"),
]
_BAD_NAME = re.compile(r"/v2/(?P<name>.*)/(?:blobs|manifests|tags|referrers)(?:/.*)?")


def _parse_digest(text: str, code: ErrorCode = ErrorCode.DIGEST_INVALID) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidArgument as exc:
        raise RegistryError(code, str(exc)) from exc


def _parse_page(request: web.Request) -> tuple[int | None, str]:
    raw = request.query.get("n")
    n: int | None = None
    if raw is not None:
        if not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_N:
            raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID,
                                f"invalid n={raw[:40]!r}: expected an integer from 0 to {MAX_N}")
        n = min(int(raw), MAX_PAGE)  # fewer than asked is allowed: the Link header leads on
    return n, request.query.get("last", "")


def _page(items: list[str], n: int | None, last: str) -> tuple[list[str], bool]:
    """Items after `last` in lexical order, at most n of them, and whether more follow."""
    rest = [i for i in items if i > last] if last else items
    if n is None:
        return rest, False
    return rest[:n], len(rest) > n


class Registry:
    def __init__(self, storage: RegistryStorage, auth: Authorizer | None = None,
                 upload_ttl: float = DEFAULT_UPLOAD_TTL) -> None:
        self.storage = storage
        self.auth: Authorizer = auth or OpenAccess()
        self.uploads = UploadTable(storage, upload_ttl)
        self._upload_ttl = upload_ttl
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="berth-registry-io")
        self._handlers: dict[str, Handler] = {
            "base": self._base, "catalog": self._catalog, "uploads": self._uploads, "upload": self._upload,
            "blob": self._blob, "manifest": self._manifest, "tags": self._tags, "referrers": self._referrers,
        }

    # -- plumbing -----------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _authorize(self, request: web.Request, needs: Access) -> str:
        try:
            return self.auth.authorize(request.headers.get("Authorization"), needs)
        except RegistryError as exc:
            if exc.status == 401:
                exc.challenge = self.auth.challenge(needs)
            raise

    def authorize_page(self, request: web.Request, needs: Access) -> str:
        """The web UI's check: a browser speaks Basic, so with token auth the same users and rights apply."""
        if isinstance(self.auth, TokenAuth):
            try:
                return self.auth.browse(request.headers.get("Authorization"), needs)
            except RegistryError as exc:
                exc.challenge = f'Basic realm="{self.auth.realm}"'
                raise
        return self._authorize(request, needs)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        for pattern, kind in _ROUTES:
            m = pattern.fullmatch(path)
            if m is not None:
                groups = m.groupdict()
                name = RepoName.parse(groups["name"]) if groups.get("name") else None
                return await self._handlers[kind](request, Context(name, groups.get("arg") or ""))
        bad = _BAD_NAME.fullmatch(path)
        if bad is not None:
            raise RegistryError(ErrorCode.NAME_INVALID, f"invalid repository name {bad['name'][:300]!r}")
        raise RegistryError(ErrorCode.UNSUPPORTED, f"no such endpoint: {request.method} {path[:300]}", status=404)

    def _check_method(self, request: web.Request, allowed: tuple[str, ...]) -> None:
        if request.method not in allowed:
            raise RegistryError(ErrorCode.UNSUPPORTED, f"{request.method} is not allowed here", status=405)

    # -- base, catalog, tags, referrers -------------------------------------------------------------

    async def _base(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        self._check_method(request, ("GET", "HEAD"))
        self._authorize(request, BASE)
        return web.json_response({})

    async def _catalog(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        self._check_method(request, ("GET",))
        self._authorize(request, CATALOG)
        n, last = _parse_page(request)
        repos, more = _page(await self._run(self.storage.repositories), n, last)
        resp = web.json_response({"repositories": repos})
        if more:
            resp.headers["Link"] = f'</v2/_catalog?n={n}&last={repos[-1]}>; rel="next"'
        return resp

    async def _tags(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        assert ctx.name is not None
        self._check_method(request, ("GET",))
        self._authorize(request, Access("repository", ctx.name.value, ("pull",)))
        n, last = _parse_page(request)
        try:
            all_tags = self.storage.tags(ctx.name)
        except NotFound as exc:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, str(exc)) from exc
        tags, more = _page(all_tags, n, last)
        resp = web.json_response({"name": ctx.name.value, "tags": tags})
        if more:
            resp.headers["Link"] = f'</v2/{ctx.name}/tags/list?n={n}&last={tags[-1]}>; rel="next"'
        return resp

    async def _referrers(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        assert ctx.name is not None
        self._check_method(request, ("GET",))
        self._authorize(request, Access("repository", ctx.name.value, ("pull",)))
        subject = _parse_digest(ctx.arg)
        found = self.storage.referrers(ctx.name, subject)
        headers = {}
        artifact_type = request.query.get("artifactType")
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": found}
        return web.Response(body=json.dumps(body).encode(), headers=headers,
                            content_type="application/vnd.oci.image.index.v1+json")

    # -- blobs --------------------------------------------------------------------------------------

    async def _blob(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        assert ctx.name is not None
        self._check_method(request, ("GET", "HEAD", "DELETE"))
        digest = _parse_digest(ctx.arg)
        if request.method == "DELETE":
            self._authorize(request, Access("repository", ctx.name.value, ("delete",)))
            try:
                self.storage.unlink_blob(ctx.name, digest)
            except NotFound as exc:
                raise RegistryError(ErrorCode.BLOB_UNKNOWN, str(exc)) from exc
            return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
        self._authorize(request, Access("repository", ctx.name.value, ("pull",)))
        try:
            path = self.storage.blob_path(ctx.name, digest)
            size = path.stat().st_size
        except (NotFound, FileNotFoundError) as exc:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, f"blob {digest} is not in repository {ctx.name}") from exc
        headers = {"Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000"}
        range_header = request.headers.get("Range")
        if range_header is not None:
            _check_range(range_header, size)
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(size)})
        return web.FileResponse(path, chunk_size=CHUNK, headers=headers)

    # -- uploads ------------------------------------------------------------------------------------

    def _upload_headers(self, session: UploadSession, offset: int) -> dict[str, str]:
        return {"Location": f"/v2/{session.repo}/blobs/uploads/{session.id}", "Docker-Upload-UUID": str(session.id),
                "Range": f"0-{max(offset - 1, 0)}"}

    def _blob_created(self, repo: RepoName, digest: Digest) -> web.Response:
        return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{digest}",
                                                 "Docker-Content-Digest": str(digest)})

    async def _uploads(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        assert ctx.name is not None
        self._check_method(request, ("POST",))
        self._authorize(request, Access("repository", ctx.name.value, ("pull", "push")))
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount is not None:
            digest = _parse_digest(mount)
            if source is not None:
                with contextlib.suppress(RegistryError, InvalidArgument, NotFound):
                    origin = RepoName.parse(source)
                    self._authorize(request, Access("repository", origin.value, ("pull",)))
                    self.storage.blob_size(origin, digest)
                    await self._run(self.storage.link_blob, ctx.name, digest)
                    return self._blob_created(ctx.name, digest)
            # not mountable: the spec says fall back to an ordinary upload session
        expected = request.query.get("digest")
        session = self.storage.start_upload(ctx.name)
        if expected is not None:  # monolithic: the whole blob is this request's body
            digest = _parse_digest(expected)
            return await self._finish(request, session, digest)
        return web.Response(status=202, headers={**self._upload_headers(session, 0), "Content-Length": "0"})

    def _session(self, ctx: Context) -> UploadSession:
        assert ctx.name is not None
        try:
            return self.storage.upload_session(ctx.name, UploadId.parse(ctx.arg))
        except (InvalidArgument, NotFound) as exc:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, str(exc)) from exc

    async def _upload(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        assert ctx.name is not None
        self._check_method(request, ("GET", "PATCH", "PUT", "DELETE"))
        self._authorize(request, Access("repository", ctx.name.value,
                                        ("pull",) if request.method == "GET" else ("pull", "push")))
        session = self._session(ctx)
        if request.method == "GET":
            return web.Response(status=204, headers=self._upload_headers(session, self.uploads.peek_offset(session)))
        if request.method == "DELETE":
            self.uploads.finish(session, abort=True)
            return web.Response(status=204)
        if request.method == "PATCH":
            async with self._writer(session) as writer:
                await self._receive(request, writer)
                offset = writer.offset
            return web.Response(status=202, headers={**self._upload_headers(session, offset), "Content-Length": "0"})
        expected = request.query.get("digest")
        if expected is None:
            raise RegistryError(ErrorCode.DIGEST_INVALID, "PUT of an upload needs ?digest=")
        return await self._finish(request, session, _parse_digest(expected))

    @contextlib.asynccontextmanager
    async def _writer(self, session: UploadSession) -> AsyncIterator[UploadWriter]:
        try:
            async with self.uploads.writer(session) as writer:
                yield writer
        except Unavailable as exc:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, str(exc), status=409) from exc

    async def _receive(self, request: web.Request, writer: UploadWriter) -> None:
        """Append the request body at the writer's offset; a Content-Range must start exactly there."""
        content_range = request.headers.get("Content-Range")
        length = request.content_length
        if content_range is not None:
            m = re.fullmatch(r"(?:bytes[ =])?(\d{1,18})-(\d{1,18})(?:/(?:\d+|\*))?", content_range.strip())
            if m is None:
                raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, f"invalid Content-Range {content_range[:80]!r}",
                                    status=416)
            start, end = int(m[1]), int(m[2])
            if start != writer.offset or end < start:
                raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID,
                                    f"chunk {start}-{end} is out of order: the upload has {writer.offset} bytes",
                                    status=416, detail={"offset": writer.offset})
            if length is not None and length != end - start + 1:
                raise RegistryError(ErrorCode.SIZE_INVALID, f"Content-Length {length} does not match the "
                                    f"Content-Range {start}-{end}", status=416)
        received = 0
        buf = bytearray()
        async for piece in request.content.iter_chunked(CHUNK):
            buf += piece
            received += len(piece)
            if len(buf) >= CHUNK:
                await self._run(writer.write, buf)  # done with buf before it is reused: no copy needed
                buf.clear()
        if buf:
            await self._run(writer.write, buf)
        if length is not None and received != length:
            raise RegistryError(ErrorCode.SIZE_INVALID, f"got {received} bytes of a {length}-byte body")

    async def _finish(self, request: web.Request, session: UploadSession, digest: Digest) -> web.StreamResponse:
        async with self._writer(session) as writer:
            if request.can_read_body:
                await self._receive(request, writer)
            try:
                committed = await self._run(self.storage.commit_upload, session.repo, writer, digest)
            except DigestMismatch as exc:
                self.uploads.finish(session, abort=True)
                raise RegistryError(ErrorCode.DIGEST_INVALID, str(exc)) from exc
        self.uploads.finish(session, abort=False)
        return self._blob_created(session.repo, committed)

    # -- manifests ----------------------------------------------------------------------------------

    def _reference(self, text: str) -> Tag | Digest:
        if ":" in text:
            return _parse_digest(text)
        try:
            return Tag.parse(text)
        except InvalidArgument as exc:
            raise RegistryError(ErrorCode.TAG_INVALID, str(exc)) from exc

    async def _manifest(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        assert ctx.name is not None
        self._check_method(request, ("GET", "HEAD", "PUT", "DELETE"))
        ref = self._reference(ctx.arg)
        if request.method == "PUT":
            self._authorize(request, Access("repository", ctx.name.value, ("pull", "push")))
            return await self._put_manifest(request, ctx.name, ref)
        if request.method == "DELETE":
            self._authorize(request, Access("repository", ctx.name.value, ("delete",)))
            try:
                await self._run(self.storage.delete_manifest, ctx.name, ref)
            except NotFound as exc:
                raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, str(exc)) from exc
            return web.Response(status=202)
        self._authorize(request, Access("repository", ctx.name.value, ("pull",)))
        try:
            stored = await self._run(self.storage.get_manifest, ctx.name, ref)
        except NotFound as exc:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, str(exc)) from exc
        headers = {"Docker-Content-Digest": str(stored.digest), "Content-Type": stored.media_type,
                   "ETag": f'"{stored.digest}"'}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(stored.data))})
        return web.Response(body=stored.data, headers=headers)

    async def _put_manifest(self, request: web.Request, repo: RepoName, ref: Tag | Digest) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_MANIFEST_BYTES:
            raise RegistryError(ErrorCode.SIZE_INVALID, f"manifest over {MAX_MANIFEST_BYTES} bytes", status=413)
        data = await request.content.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(ErrorCode.SIZE_INVALID, f"manifest over {MAX_MANIFEST_BYTES} bytes", status=413)
        try:
            info = parse_manifest(data, request.headers.get("Content-Type", ""))
        except InvalidArgument as exc:
            raise RegistryError(ErrorCode.MANIFEST_INVALID, str(exc)) from exc
        if isinstance(ref, Digest) and Digest.of(data) != ref:
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"manifest body hashes to {Digest.of(data)}, not {ref}")
        try:
            digest = await self._run(self.storage.put_manifest, repo, ref if isinstance(ref, Tag) else None,
                                     data, info)
        except NotFound as exc:
            raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, str(exc)) from exc
        headers = {"Location": f"/v2/{repo}/manifests/{digest}", "Docker-Content-Digest": str(digest)}
        if info.subject is not None:
            headers["OCI-Subject"] = str(info.subject)
        return web.Response(status=201, headers=headers)

    # -- token endpoint -----------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.StreamResponse:
        if not isinstance(self.auth, TokenAuth):
            raise RegistryError(ErrorCode.UNSUPPORTED, "this registry does not issue tokens", status=404)
        scopes = []
        for text in request.query.getall("scope", []):
            for one in text.split(" "):
                if one:
                    try:
                        scopes.append(Access.parse_scope(one))
                    except InvalidArgument as exc:
                        raise RegistryError(ErrorCode.UNSUPPORTED, str(exc), status=400) from exc
        try:
            answer = self.auth.issue(request.headers.get("Authorization"), scopes)
        except RegistryError as exc:
            exc.challenge = f'Basic realm="{self.auth.realm}"'
            raise
        return web.json_response(answer)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def expire_uploads(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                self.uploads.expire()

    def close(self) -> None:
        self.uploads.close_all()
        self._pool.shutdown(wait=False)


def _check_range(header: str, size: int) -> None:
    """416 with the spec's error JSON for a Range the blob cannot satisfy (FileResponse serves the rest)."""
    m = re.fullmatch(r"bytes=(\d{0,18})-(\d{0,18})", header.strip())
    if m is None or (not m[1] and not m[2]):
        raise RegistryError(ErrorCode.RANGE_INVALID, f"unsupported Range {header[:80]!r}: expected bytes=start-end")
    if m[1]:
        start = int(m[1])
        if start >= size or (m[2] and int(m[2]) < start):
            raise RegistryError(ErrorCode.RANGE_INVALID, f"range {header[:80]!r} is beyond the blob's {size} bytes",
                                detail={"size": size})
    elif int(m[2]) == 0:
        raise RegistryError(ErrorCode.RANGE_INVALID, "a suffix range of 0 bytes selects nothing")


_STATUS_OF = ((LimitExceeded, 413, ErrorCode.SIZE_INVALID), (Corrupt, 400, ErrorCode.BLOB_UPLOAD_INVALID),
              (InvalidArgument, 400, ErrorCode.NAME_INVALID), (NotFound, 404, ErrorCode.NAME_UNKNOWN),
              (Conflict, 409, ErrorCode.BLOB_UPLOAD_INVALID), (Unavailable, 429, ErrorCode.TOOMANYREQUESTS))


def _error_response(exc: RegistryError) -> web.Response:
    resp = web.Response(status=exc.status, body=exc.body(), content_type="application/json")
    if exc.status == 401 and exc.challenge:
        resp.headers["WWW-Authenticate"] = exc.challenge
    return resp


@web.middleware
async def errors_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
    """The one place a failure becomes a status and the spec's error JSON."""
    try:
        resp = await handler(request)
    except RegistryError as exc:
        resp = _error_response(exc)
    except web.HTTPException:
        raise
    except tuple(k for k, _, _ in _STATUS_OF) as exc:
        for kind, status, code in _STATUS_OF:
            if isinstance(exc, kind):
                resp = _error_response(RegistryError(code, str(exc), status=status))
                break
    except Exception as exc:  # a bug or an OS error: log it, answer in the spec's format, keep serving
        _log.exception("%s %s failed", request.method, request.path)
        resp = _error_response(RegistryError(ErrorCode.UNKNOWN, f"internal error: {type(exc).__name__}"))
    if request.path.startswith("/v2"):
        resp.headers[API_VERSION[0]] = API_VERSION[1]
    return resp
