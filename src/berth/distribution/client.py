"""The registry HTTP client (OCI distribution spec): one `Registry` session per registry and operation.

It picks the scheme (TLS, verified unless the registry is insecure; plain HTTP only as an insecure registry's
fallback), authenticates (Basic or Bearer, see auth.py), follows redirects itself so that credentials never go to
another origin, and turns the registry's `{"errors":[{"code","message"}]}` answers into berth errors.
The registry's wire format lives here, in pull.py and in push.py, nowhere else.
May import: berth.distribution, berth.oci, berth.errors, aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from berth import __version__
from berth.distribution.auth import Challenge, Token, parse_challenges, pick
from berth.distribution.credentials import AuthConfig
from berth.distribution.hosts import Endpoint, RegistryHosts, split_host
from berth.errors import BerthError, Forbidden, InvalidArgument, NotFound, Unauthorized, Unavailable

USER_AGENT = f"berth/{__version__}"
MAX_REDIRECTS = 10
TOKEN_DEFAULT_TTL = 60.0
_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
                   aiohttp.ClientSSLError, ssl.SSLError, asyncio.TimeoutError)


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


@dataclass(frozen=True, slots=True)
class RegistryErrorDetail:
    code: str
    message: str

    def __str__(self) -> str:
        # distribution's errcode: the code lowercased with spaces, then the message
        return f"{self.code.lower().replace('_', ' ')}: {self.message}" if self.code else self.message


async def error_details(resp: aiohttp.ClientResponse) -> list[RegistryErrorDetail]:
    try:
        body = await resp.content.read(64 << 10)
        raw = json.loads(body)
    except (TimeoutError, ValueError, aiohttp.ClientError):
        return []
    errors = raw.get("errors") if isinstance(raw, Mapping) else None
    out = []
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, Mapping):
            out.append(RegistryErrorDetail(str(item.get("code") or ""), str(item.get("message") or "")))
    return out


async def raise_for(resp: aiohttp.ClientResponse, what: str) -> None:
    """A berth error for an unexpected registry answer; `what` names the object ('manifest for x:1')."""
    details = await error_details(resp)
    text = "; ".join(str(d) for d in details) or f"{resp.status} {resp.reason}"
    kind: type[BerthError]
    if resp.status == 404:
        raise NotFound(f"{what} not found: {text}")
    if resp.status == 401:
        kind = Unauthorized
    elif resp.status == 403:
        kind = Forbidden
    elif resp.status == 429 or resp.status >= 500:
        kind = Unavailable
    else:
        kind = InvalidArgument
    raise kind(f"{what}: {text}")


class Registry:
    """HTTP to one registry with one set of credentials; use as an async context manager."""

    def __init__(self, hosts: RegistryHosts, host: str, auth: AuthConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, connections: int = 8) -> None:
        self.hosts = hosts
        self.endpoint: Endpoint = hosts.endpoint(host)
        self.auth = auth if auth is not None else AuthConfig()
        self._clock = clock
        self._ssl = hosts.ssl_context(self.endpoint)
        self._connections = connections
        self._http: aiohttp.ClientSession | None = None
        self._scheme = ""
        self._challenge: Challenge | None = None
        self._tokens: dict[str, Token] = {}
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> Registry:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl),
            timeout=timeout, auto_decompress=False, headers={"User-Agent": USER_AGENT},
            read_bufsize=1 << 20)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("Registry used outside 'async with'")
        return self._http

    @property
    def base(self) -> URL:
        if not self._scheme:
            raise RuntimeError("Registry.ping() must run first")
        return URL(self.endpoint.base_url(self._scheme))

    # -- connecting ---------------------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /v2/: choose the scheme and learn the auth challenge. Unavailable when nothing answers."""
        if self._scheme:
            return
        schemes = ("https", "http") if self.endpoint.insecure else ("https",)
        last: BaseException | None = None
        for scheme in schemes:
            url = URL(self.endpoint.base_url(scheme)) / "v2" / ""
            try:
                async with self.http.get(url, allow_redirects=False) as resp:
                    await resp.read()
                    self._scheme = scheme
                    if resp.status == 401:
                        self._challenge = pick(parse_challenges(resp.headers.getall("WWW-Authenticate", [])))
                    elif resp.status == 404:
                        raise NotFound(f"{url} answered 404: {self.endpoint.host} is not a registry (v2 API)")
                    return
            except _CONNECT_ERRORS as exc:
                last = exc
        hint = "" if self.endpoint.insecure else (
            f"; if {self.endpoint.host} serves plain HTTP, add it to the insecure registries")
        raise Unavailable(f"registry {self.endpoint.host} unreachable: {last}{hint}") from last

    async def check_login(self) -> str:
        """Verify the credentials against /v2/ (`docker login`); returns an identity token ('' for none)."""
        await self.ping()
        if self._challenge is None:
            return ""  # the registry needs no auth: any credentials "work", as with dockerd
        if self.auth.anonymous:
            raise Unauthorized(f"registry {self.endpoint.host} requires a username and password")
        headers = await self._authorization([], force=True)
        async with self.http.get(self.base / "v2" / "", headers=headers, allow_redirects=False) as resp:
            await resp.read()
            if resp.status == 401:
                raise Unauthorized(f"login attempt to {self.base}/v2/ failed with status: 401 Unauthorized")
            if resp.status >= 400:
                await raise_for(resp, f"login to {self.endpoint.host}")
        return self._tokens[""].refresh_token if "" in self._tokens else ""

    # -- authorization ------------------------------------------------------------------------------

    def _basic(self) -> str:
        raw = f"{self.auth.username}:{self.auth.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _authorization(self, scopes: Sequence[str], force: bool = False) -> dict[str, str]:
        c = self._challenge
        if c is None:
            return {}
        if c.scheme == "basic":
            if self.auth.anonymous:
                return {}
            return {"Authorization": self._basic()}
        if self.auth.registry_token:
            return {"Authorization": f"Bearer {self.auth.registry_token}"}
        key = " ".join(sorted(scopes))
        async with self._token_lock:
            token = self._tokens.get(key)
            if force or token is None or token.expires_at <= self._clock():
                token = self._tokens[key] = await self._fetch_token(c, scopes)
        return {"Authorization": f"Bearer {token.value}"}

    def _may_send_credentials_to(self, realm: URL) -> bool:
        own, _ = split_host(self.endpoint.api_host)
        return (realm.host or "").lower() == own and (realm.scheme == "https" or self._scheme == "http")

    async def _fetch_token(self, c: Challenge, scopes: Sequence[str]) -> Token:
        try:
            realm = URL(c.realm)
        except ValueError as exc:
            raise Unavailable(f"registry {self.endpoint.host} gave an invalid token realm {c.realm!r}") from exc
        if realm.scheme not in ("http", "https") or not realm.host:
            raise Unavailable(f"registry {self.endpoint.host} gave an invalid token realm {c.realm!r}")
        all_scopes = [s for s in (*scopes, *([c.scope] if c.scope else [])) if s]
        trusted = self._may_send_credentials_to(realm)
        headers: dict[str, str] = {}
        try:
            if trusted and self.auth.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": self.auth.identity_token,
                        "service": c.service, "client_id": "berth", "scope": " ".join(all_scopes)}
                ctx = self.http.post(realm, data=form, allow_redirects=False)
            else:
                query: list[tuple[str, str]] = [("service", c.service)] if c.service else []
                query += [("scope", s) for s in all_scopes]
                if trusted and not self.auth.anonymous:
                    headers["Authorization"] = self._basic()
                    query.append(("account", self.auth.username))
                ctx = self.http.get(realm.with_query(query), headers=headers, allow_redirects=False)
            async with ctx as resp:
                if resp.status in (401, 403):
                    raise Unauthorized(f"the token server {realm.host} refused the credentials for "
                                       f"{self.endpoint.host}: {resp.status} {resp.reason}")
                if resp.status != 200:
                    await raise_for(resp, f"token from {realm}")
                raw = json.loads(await resp.content.read(1 << 20))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"token server {realm} unreachable: {exc}") from exc
        except ValueError as exc:
            raise Unavailable(f"token server {realm} answered no JSON") from exc
        value = raw.get("token") or raw.get("access_token") if isinstance(raw, Mapping) else None
        if not isinstance(value, str) or not value:
            raise Unavailable(f"token server {realm} answered without a token")
        try:
            ttl = float(raw.get("expires_in") or TOKEN_DEFAULT_TTL)
        except (TypeError, ValueError):
            ttl = TOKEN_DEFAULT_TTL
        # refresh a little early, so a token does not expire between check and use
        return Token(value, self._clock() + max(ttl - 5.0, 1.0), str(raw.get("refresh_token") or ""))

    # -- requests -----------------------------------------------------------------------------------

    async def request(self, method: str, url: URL, scopes: Sequence[str], *,
                      headers: Mapping[str, str] | None = None, data: Any = None,
                      replayable: bool = True) -> aiohttp.ClientResponse:
        """One request with auth; redirects followed without credentials to other origins. The caller
        closes the response (`async with`). A 401 with a cached token refreshes it once if the body can be
        sent again."""
        await self.ping()
        if not url.is_absolute():
            url = self.base.join(url)
        own = _origin(self.base)
        auth = await self._authorization(scopes)
        for attempt in (0, 1):
            target = url
            for _hop in range(MAX_REDIRECTS + 1):
                send = dict(headers or {})
                if _origin(target) == own:
                    send.update(auth)
                try:
                    resp = await self.http.request(method, target, headers=send, data=data, allow_redirects=False)
                except _CONNECT_ERRORS as exc:
                    raise Unavailable(f"registry request {method} {target} failed: {exc}") from exc
                except aiohttp.ClientError as exc:
                    raise Unavailable(f"registry request {method} {target} failed: {exc}") from exc
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    location = URL(resp.headers["Location"])
                    resp.release()
                    target = target.join(location)
                    if resp.status == 303:
                        method, data = "GET", None
                    continue
                break
            else:
                raise Unavailable(f"registry {self.endpoint.host}: more than {MAX_REDIRECTS} redirects for {url}")
            if resp.status == 401 and attempt == 0 and replayable and _origin(target) == own:
                challenges = parse_challenges(resp.headers.getall("WWW-Authenticate", []))
                fresh = pick(challenges)
                if fresh is not None and (self._challenge is None or fresh.scheme == "bearer"):
                    resp.release()
                    self._challenge = fresh
                    auth = await self._authorization(scopes, force=True)
                    continue
            return resp
        raise AssertionError("unreachable")

    def repo_url(self, path: str, *parts: str) -> URL:
        """A path under /v2/<repository>/ (relative: request() puts it on the chosen scheme and host)."""
        url = URL("/v2")
        for piece in path.split("/"):
            url = url / piece
        for piece in parts:
            url = url / piece
        return url
