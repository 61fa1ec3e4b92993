"""EngineClient: the Docker Engine API over HTTP/1.1, on a unix socket or TCP, with the standard library only.

Every call goes to `/v{version}/...` where version = min(CLIENT_MAX_API, the daemon's `Api-Version` from
`HEAD /_ping`), as the docker CLI negotiates. Error bodies `{"message": ...}` become berth.errors kinds through
the one STATUS_KINDS table; the original status and message stay reachable as the `DaemonStatus` cause.

It imports neither http.client nor dataclasses nor typing at run time: together they cost ~60 ms per CLI call.
May import: the standard library, berth.errors, berth.client.hosts, berth.client.wire.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote, urlencode

from berth.client.hosts import DaemonHost
from berth.client.wire import ClosedBeforeResponse, Connection, RawResponse, WireError
from berth.errors import (
    BerthError,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    NotModified,
    Unauthorized,
    Unavailable,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy treats this as true; at run time typing is never imported
    from typing import IO, Any

CLIENT_MAX_API = "1.44"
FALLBACK_API = "1.24"  # what docker assumes when /_ping carries no Api-Version header
USER_AGENT = "berth-cli/0.1"
_CHUNK = 64 * 1024

# The one place that decides which berth error a daemon status becomes.
STATUS_KINDS: dict[int, type[BerthError]] = {
    304: NotModified,
    400: InvalidArgument,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


class DaemonStatus(Exception):
    """The daemon answered with an error status: kept as the __cause__ of the berth error raised for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def error_for_status(status: int, message: str) -> BerthError:
    kind = STATUS_KINDS.get(status, BerthError)
    return kind(message)


def raise_for_status(status: int, body: bytes, reason: str = "") -> None:
    if 200 <= status < 300:
        return
    message = _error_message(body) or reason or f"status {status}"
    raise error_for_status(status, message) from DaemonStatus(status, message)


def from_daemon(err: BaseException) -> DaemonStatus | None:
    """The daemon's answer behind a berth error raised by this client, if it came from one."""
    cause = err.__cause__
    return cause if isinstance(cause, DaemonStatus) else None


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    return text


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


class Ping:
    """The daemon's answer to /_ping: its API version (or FALLBACK_API) and headers."""

    __slots__ = ("api_version", "headers")

    def __init__(self, api_version: str, headers: Mapping[str, str]) -> None:
        self.api_version = api_version
        self.headers = headers


class Response:
    """An open response whose body the caller streams; close() (or reading to the end) frees the connection."""

    def __init__(self, raw: RawResponse) -> None:
        self._raw = raw
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def read(self) -> bytes:
        try:
            return self._raw.read()
        except OSError as exc:
            raise Unavailable(f"the daemon's answer broke off: {exc}") from exc

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self._raw.read1(_CHUNK):
                yield chunk
        except OSError as exc:
            raise Unavailable(f"the daemon's answer broke off: {exc}") from exc

    def json_lines(self) -> Iterator[Any]:
        """Decode a stream of JSON values (one per line as dockerd sends them, but any whitespace works)."""
        decoder = json.JSONDecoder()
        buf = ""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            try:
                buf += pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:
                continue  # a multi-byte character split across chunks: wait for the rest
            while True:
                stripped = buf.lstrip()
                if not stripped:
                    buf = ""
                    break
                try:
                    value, end = decoder.raw_decode(stripped)
                except ValueError:
                    buf = stripped
                    break
                yield value
                buf = stripped[end:]
        if buf.strip():
            raise Unavailable(f"the daemon's stream ended inside a JSON value: {buf.strip()[:80]!r}")

    def close(self) -> None:
        self._raw.close()


class EngineClient:
    """One keep-alive connection to one daemon; calls are sequential."""

    def __init__(self, host: DaemonHost, timeout: float | None = None, max_api: str = CLIENT_MAX_API) -> None:
        self.host = host
        self._timeout = timeout
        self._max_api = max_api
        self._conn: Connection | None = None
        self._api: str | None = None

    # ---- connection ----
    def _connection(self) -> Connection:
        if self._conn is None:
            if self.host.scheme == "unix":
                self._conn = Connection(socket.AF_UNIX, self.host.socket_path, self._timeout)
            else:
                self._conn = Connection(socket.AF_INET, (self.host.tcp_host, self.host.tcp_port), self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def sibling(self) -> EngineClient:
        """A second connection to the same daemon at the version already negotiated: for a call that must run
        alongside another (run's wait beside its attach and start)."""
        other = EngineClient(self.host, self._timeout, self._max_api)
        other._api = self._api
        return other

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cannot_connect(self, exc: BaseException) -> Unavailable:
        return Unavailable(f"Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?")

    def _send(self, method: str, url: str, body: bytes | IO[bytes] | Iterable[bytes] | None,
              headers: Mapping[str, str]) -> Response:
        all_headers = {"Host": "api.moby.localhost", "User-Agent": USER_AGENT, **headers}
        if body is None and method in ("POST", "PUT"):
            body = b""  # docker sends Content-Length: 0 on bodiless POSTs
        replayable = body is None or isinstance(body, bytes)
        payload: bytes | Iterable[bytes] | None = body if replayable or not hasattr(body, "read") else \
            _file_chunks(body)  # type: ignore[arg-type]
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.connected
            try:
                return Response(conn.request(method, url, all_headers, payload))
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                self.close()
                raise self._cannot_connect(exc) from exc
            except (ClosedBeforeResponse, BrokenPipeError, ConnectionResetError) as exc:
                # A kept-alive connection the daemon closed meanwhile: retry once on a fresh one, unless the
                # body was a stream we cannot replay.
                self.close()
                if attempt or not reused or not replayable:
                    raise Unavailable(f"the daemon at {self.host} closed the connection: {exc}") from exc
            except WireError as exc:
                self.close()
                raise Unavailable(f"the daemon at {self.host} answered something that is not HTTP: {exc}") from exc
            except OSError as exc:
                self.close()
                raise self._cannot_connect(exc) from exc
        raise AssertionError("unreachable")

    # ---- negotiation ----
    def ping(self) -> Ping:
        resp = self._send("HEAD", "/_ping", None, {})
        resp.read()
        if resp.status == 405:
            resp = self._send("GET", "/_ping", None, {})
            resp.read()
        if resp.status >= 400:
            raise_for_status(resp.status, b"", resp.reason)
        version = resp.headers.get("api-version") or FALLBACK_API
        return Ping(version, resp.headers)

    @property
    def api_version(self) -> str:
        if self._api is None:
            server = self.ping().api_version
            self._api = min(server, self._max_api, key=_version_tuple)
        return self._api

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = f"/v{self.api_version}{path}"
        if query:
            pairs: list[tuple[str, str]] = []
            for k, v in query.items():
                if isinstance(v, tuple):  # a tuple repeats the parameter: names=a&names=b
                    pairs.extend((k, _query_value(x)) for x in v)
                elif v is not None:
                    pairs.append((k, _query_value(v)))
            if pairs:
                url += "?" + urlencode(pairs)
        return url

    # ---- requests ----
    def open(self, method: str, path: str, query: Mapping[str, Any] | None = None, *,
             body: bytes | IO[bytes] | Iterable[bytes] | None = None,
             headers: Mapping[str, str] | None = None) -> Response:
        """Send a request and return the open response; error statuses are raised as berth errors."""
        resp = self._send(method, self.url(path, query), body, headers or {})
        if resp.status >= 400 or resp.status == 304:
            raise_for_status(resp.status, resp.read(), resp.reason)
        return resp

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None, *,
             json_body: Any = None) -> bytes:
        body = None if json_body is None else json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self.open(method, path, query, body=body, headers=headers).read()

    def get_json(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return json.loads(self.call("GET", path, query) or b"null")

    def post_json(self, path: str, query: Mapping[str, Any] | None = None, json_body: Any = None) -> Any:
        raw = self.call("POST", path, query, json_body=json_body)
        return json.loads(raw) if raw.strip() else None

    def delete_json(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        raw = self.call("DELETE", path, query)
        return json.loads(raw) if raw.strip() else None

    def stream_json(self, method: str, path: str, query: Mapping[str, Any] | None = None, *,
                    body: bytes | IO[bytes] | Iterable[bytes] | None = None,
                    content_type: str = "application/x-tar",
                    headers: Mapping[str, str] | None = None) -> Iterator[Any]:
        """A JSON-lines progress stream (load, import, pull, bootstrap), optionally after uploading `body`."""
        headers = {**({"Content-Type": content_type} if body is not None else {}), **(headers or {})}
        resp = self.open(method, path, query, body=body, headers=headers)
        try:
            yield from resp.json_lines()
        finally:
            resp.close()

    def download(self, path: str, query: Mapping[str, Any] | None, out: IO[bytes]) -> int:
        """Copy a (tar) response body into `out`; return the byte count."""
        resp = self.open("GET", path, query)
        n = 0
        try:
            for chunk in resp.chunks():
                out.write(chunk)
                n += len(chunk)
        finally:
            resp.close()
        return n


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def path_segment(name: str) -> str:
    """An image or container name as one path segment: keep `/` and `:` as docker does, escape the rest."""
    return quote(name, safe="/:@")


def _file_chunks(f: IO[bytes], size: int = _CHUNK) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def file_chunks(f: IO[bytes], size: int = _CHUNK) -> Iterator[bytes]:
    """Stream a file (or stdin) as request body chunks without reading it whole."""
    while chunk := f.read(size):
        yield chunk
