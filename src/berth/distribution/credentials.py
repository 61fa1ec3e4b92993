"""Registry credentials: the AuthConfig a client sends (X-Registry-Auth) and Docker's `config.json` store.

config.json (`$DOCKER_CONFIG/config.json`, default ~/.docker/config.json) keeps `auths[host].auth` =
base64("user:password") (or `identitytoken`), written 0600 in a 0700 directory, atomically. A `credsStore` or a
per-host `credHelpers` entry sends the secret to `docker-credential-<name>` (get/store/erase on stdin) instead.
Docker Hub's key is "https://index.docker.io/v1/". The CLI imports this module: it stays stdlib-only (plus
berth.errors and berth.util).
May import: berth.errors, berth.util.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import InvalidArgument, NotFound, Unavailable
from berth.util.atomic import write_atomic

HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", HUB_KEY, "https://index.docker.io/v1",
              "https://registry-1.docker.io"}


def server_key(host: str) -> str:
    """The key a registry's entry has in config.json: the host as given, Docker Hub's legacy URL for the hub."""
    if host in _HUB_NAMES:
        return HUB_KEY
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    return host.rstrip("/").split("/", 1)[0] or host


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Credentials for one registry; all empty = anonymous."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AuthConfig:
        def text(*keys: str) -> str:
            for key in keys:
                value = raw.get(key)
                if isinstance(value, str) and value:
                    return value
            return ""

        user, password = text("username", "Username"), text("password", "Password")
        encoded = text("auth", "Auth")
        if encoded and not user:
            user, password = decode_auth(encoded)
        return cls(user, password, text("identitytoken", "IdentityToken"), text("registrytoken", "RegistryToken"),
                   text("serveraddress", "ServerAddress"))

    def to_json(self) -> dict[str, str]:
        out = {"username": self.username, "password": self.password, "serveraddress": self.server_address}
        if self.identity_token:
            out["identitytoken"] = self.identity_token
        if self.registry_token:
            out["registrytoken"] = self.registry_token
        return out

    def header(self) -> str:
        """The X-Registry-Auth value (base64url of the JSON), as the docker CLI sends it."""
        if self.anonymous:
            return "e30="
        return base64.urlsafe_b64encode(json.dumps(self.to_json()).encode()).decode()

    def __repr__(self) -> str:  # never print a secret by accident
        return f"AuthConfig(username={self.username!r}, server_address={self.server_address!r})"


def decode_auth(encoded: str) -> tuple[str, str]:
    try:
        user, sep, password = _b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("invalid auth entry in the docker config: not base64 of user:password") from exc
    if not sep:
        raise InvalidArgument("invalid auth entry in the docker config: no ':' between user and password")
    return user, password


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=False)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def decode_registry_auth(header: str) -> AuthConfig:
    """X-Registry-Auth: base64url (or standard) JSON, padding optional; empty or `{}` is anonymous."""
    if not header.strip():
        return AuthConfig()
    try:
        raw = json.loads(_b64decode(header))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("invalid X-Registry-Auth header: expected base64url-encoded JSON") from exc
    if raw is None:
        return AuthConfig()
    if not isinstance(raw, Mapping):
        raise InvalidArgument("invalid X-Registry-Auth header: expected a JSON object")
    return AuthConfig.from_json(raw)


def default_config_dir() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


class CredentialStore:
    """Docker's config.json in `config_dir`, with credential helpers honoured."""

    def __init__(self, config_dir: Path | None = None, helper_dir: Path | None = None) -> None:
        self.dir = config_dir if config_dir is not None else default_config_dir()
        self.path = self.dir / "config.json"
        self._helper_dir = helper_dir  # where docker-credential-* live; None: $PATH

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_bytes() or b"{}")
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise InvalidArgument(f"{self.path} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{self.path} is not a JSON object")
        return raw

    def _write(self, config: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        write_atomic(self.path, json.dumps(config, indent="\t").encode() + b"\n", mode=0o600)

    def _helper(self, config: Mapping[str, Any], key: str) -> str:
        helpers = config.get("credHelpers") or {}
        name = helpers.get(key) if isinstance(helpers, Mapping) else None
        if not name:
            name = config.get("credsStore") or ""
        return str(name)

    def get(self, host: str) -> AuthConfig:
        """The stored credentials for a registry host, anonymous when none are stored."""
        key = server_key(host)
        config = self._read()
        helper = self._helper(config, key)
        if helper:
            return self._helper_get(helper, key)
        entry = (config.get("auths") or {}).get(key)
        if not isinstance(entry, Mapping):
            return AuthConfig()
        found = AuthConfig.from_json(entry)
        return AuthConfig(found.username, found.password, found.identity_token, "", key)

    def store(self, host: str, auth: AuthConfig) -> None:
        key = server_key(host)
        config = self._read()
        helper = self._helper(config, key)
        if helper:
            secret = auth.identity_token or auth.password
            user = "<token>" if auth.identity_token else auth.username
            self._run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": user, "Secret": secret}))
            entry: dict[str, Any] = {}
        else:
            entry = {"auth": base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()}
            if auth.identity_token:
                entry = {"auth": base64.b64encode(f"{auth.username}:".encode()).decode(),
                         "identitytoken": auth.identity_token}
        auths = config.setdefault("auths", {})
        auths[key] = entry
        self._write(config)

    def erase(self, host: str) -> None:
        """`logout`: NotFound when nothing was stored for the host."""
        key = server_key(host)
        config = self._read()
        helper = self._helper(config, key)
        auths = config.get("auths") or {}
        had = key in auths
        if helper:
            try:
                self._run_helper(helper, "erase", key)
                had = True
            except NotFound:
                pass
        if not had:
            raise NotFound(f"not logged in to {key}")
        auths.pop(key, None)
        config["auths"] = auths
        self._write(config)

    def _helper_get(self, helper: str, key: str) -> AuthConfig:
        try:
            out = self._run_helper(helper, "get", key)
        except NotFound:
            return AuthConfig()
        try:
            raw = json.loads(out)
        except ValueError as exc:
            raise Unavailable(f"credential helper docker-credential-{helper} answered no JSON") from exc
        user, secret = str(raw.get("Username") or ""), str(raw.get("Secret") or "")
        if user == "<token>":
            return AuthConfig(identity_token=secret, server_address=key)
        return AuthConfig(user, secret, server_address=key)

    def _run_helper(self, helper: str, action: str, payload: str) -> str:
        exe = f"docker-credential-{helper}"
        if self._helper_dir is not None:
            exe = str(self._helper_dir / exe)
        try:
            proc = subprocess.run([exe, action], input=payload, capture_output=True, text=True, timeout=60)
        except FileNotFoundError as exc:
            raise Unavailable(f"credential helper {exe} is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"credential helper {exe} did not answer in 60 s") from exc
        if proc.returncode != 0:
            message = (proc.stdout.strip() or proc.stderr.strip())
            if "credentials not found" in message.lower():
                raise NotFound(f"{exe}: no credentials for {payload if action != 'store' else ''}".rstrip(": "))
            raise Unavailable(f"credential helper {exe} {action} failed: {message}")
        return proc.stdout
