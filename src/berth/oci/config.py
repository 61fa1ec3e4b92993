"""Image configuration (the config blob): what a container of the image runs, its layers' diff ids, history.

Field names follow the OCI image spec (which kept Docker's); camel/Pascal case lives only in from_json/to_json.
May import: berth.errors, berth.oci.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from berth.errors import InvalidArgument
from berth.oci.digest import Digest, chain_ids

MAX_CONFIG_BYTES = 20 * 1024 * 1024


def _strs(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # Docker accepts a bare string for Cmd/Entrypoint in some old configs
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid image config: {what} must be a list of strings")
    return tuple(value)


def _keys(value: Any) -> tuple[str, ...]:
    return tuple(sorted(value)) if isinstance(value, Mapping) else ()


@dataclass(frozen=True, slots=True)
class Healthcheck:
    test: tuple[str, ...] = ()
    interval: int = 0          # nanoseconds, as Docker stores them
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Healthcheck:
        return cls(tuple(raw.get("Test") or ()), int(raw.get("Interval") or 0), int(raw.get("Timeout") or 0),
                   int(raw.get("StartPeriod") or 0), int(raw.get("StartInterval") or 0),
                   int(raw.get("Retries") or 0))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout),
                           ("StartPeriod", self.start_period), ("StartInterval", self.start_interval),
                           ("Retries", self.retries)):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """The `config` object of an image: defaults for containers made from it."""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> ContainerConfig:
        if not raw:
            return cls()
        if not isinstance(raw, Mapping):
            raise InvalidArgument("invalid image config: config must be an object")
        labels = raw.get("Labels") or {}
        hc = raw.get("Healthcheck")
        return cls(str(raw.get("User") or ""), _keys(raw.get("ExposedPorts")), _strs(raw.get("Env"), "Env") or (),
                   _strs(raw.get("Entrypoint"), "Entrypoint"), _strs(raw.get("Cmd"), "Cmd"),
                   _keys(raw.get("Volumes")), str(raw.get("WorkingDir") or ""),
                   {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
                   str(raw.get("StopSignal") or ""), bool(raw.get("ArgsEscaped")),
                   Healthcheck.from_json(hc) if isinstance(hc, Mapping) else None,
                   _strs(raw.get("OnBuild"), "OnBuild") or (), _strs(raw.get("Shell"), "Shell") or ())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_json()
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell:
            out["Shell"] = list(self.shell)
        return out

    def with_env(self, key: str, value: str) -> ContainerConfig:
        env = [e for e in self.env if e.partition("=")[0] != key] + [f"{key}={value}"]
        return replace(self, env=tuple(env))


@dataclass(frozen=True, slots=True)
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> History:
        return cls(str(raw.get("created") or ""), str(raw.get("created_by") or ""), str(raw.get("author") or ""),
                   str(raw.get("comment") or ""), bool(raw.get("empty_layer")))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        if self.created_by:
            out["created_by"] = self.created_by
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True, slots=True)
class ImageConfig:
    architecture: str
    os: str
    diff_ids: tuple[Digest, ...]
    config: ContainerConfig = field(default_factory=ContainerConfig)
    created: str = ""
    author: str = ""
    variant: str = ""
    history: tuple[History, ...] = ()
    comment: str = ""
    docker_version: str = ""
    container_config: Mapping[str, Any] = field(default_factory=dict)   # legacy, kept verbatim for inspect
    os_version: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ImageConfig:
        rootfs = raw.get("rootfs")
        if not isinstance(rootfs, Mapping) or rootfs.get("type") != "layers":
            raise InvalidArgument("invalid image config: rootfs must be {\"type\": \"layers\", \"diff_ids\": [...]}")
        ids = rootfs.get("diff_ids") or []
        if not isinstance(ids, list):
            raise InvalidArgument("invalid image config: rootfs.diff_ids must be a list")
        history = raw.get("history") or []
        return cls(str(raw.get("architecture") or ""), str(raw.get("os") or ""),
                   tuple(Digest.parse(str(d)) for d in ids), ContainerConfig.from_json(raw.get("config")),
                   str(raw.get("created") or ""), str(raw.get("author") or ""), str(raw.get("variant") or ""),
                   tuple(History.from_json(h) for h in history if isinstance(h, Mapping)),
                   str(raw.get("comment") or ""), str(raw.get("docker_version") or ""),
                   dict(raw.get("container_config") or {}), str(raw.get("os.version") or ""))

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        if len(data) > MAX_CONFIG_BYTES:
            raise InvalidArgument(f"image config is {len(data)} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"image config is not valid JSON: {exc}") from exc
        if not isinstance(raw, Mapping):
            raise InvalidArgument("image config is not a JSON object")
        return cls.from_json(raw)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        out["config"] = self.config.to_json()
        if self.created:
            out["created"] = self.created
        if self.docker_version:
            out["docker_version"] = self.docker_version
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        out["os"] = self.os
        if self.os_version:
            out["os.version"] = self.os_version
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        if self.variant:
            out["variant"] = self.variant
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(list(self.diff_ids))

    @property
    def created_unix(self) -> int:
        return rfc3339_to_unix(self.created)


def rfc3339_to_unix(text: str) -> int:
    """Seconds since the epoch of an RFC 3339 time; Docker writes nanoseconds, Python parses microseconds."""
    if not text:
        return 0
    value = text.strip().replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    head, dot, tail = value.partition(".")
    if dot:
        digits = "".join(c for c in tail if c.isdigit())
        value = f"{head}.{digits[:6]}{tail[len(digits):]}"
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return 0
