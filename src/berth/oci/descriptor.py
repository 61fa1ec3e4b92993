"""Descriptors and platforms: how manifests and indexes point at content.

May import: berth.errors, berth.oci.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidArgument
from berth.oci.digest import Digest
from berth.oci.mediatype import MediaType

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armhf": "arm",
                 "i386": "386", "i686": "386"}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """'linux/amd64', 'linux/arm64/v8', 'linux/arm/v7'."""
        parts = text.split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
        arch = _ARCH_ALIASES.get(parts[1].lower(), parts[1].lower())
        return cls(parts[0].lower(), arch, parts[2] if len(parts) == 3 else "").normalized()

    @classmethod
    def host(cls) -> Platform:
        machine = _platform.machine().lower()
        arch = _ARCH_ALIASES.get(machine, machine)
        variant = "v8" if arch == "arm64" else ("v7" if arch == "arm" else "")
        return cls("linux", arch, variant)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Platform:
        return cls(str(raw.get("os", "")), str(raw.get("architecture", "")), str(raw.get("variant") or ""),
                   str(raw.get("os.version") or ""), tuple(raw.get("os.features") or ()))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    def normalized(self) -> Platform:
        variant = self.variant
        if self.architecture == "arm64" and variant in ("", "8"):
            variant = "v8"
        return Platform(self.os, self.architecture, variant, self.os_version, self.os_features)

    def matches(self, other: Platform) -> bool:
        """Whether content for `other` runs on this platform (variant checked only when both name one)."""
        a, b = self.normalized(), other.normalized()
        if a.os != b.os or a.architecture != b.architecture:
            return False
        return not a.variant or not b.variant or a.variant == b.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: MediaType
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Descriptor:
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"invalid descriptor {raw!r}: expected an object")
        try:
            size = int(raw["size"])
            media_type = MediaType.parse(str(raw["mediaType"]))
            digest = Digest.parse(str(raw["digest"]))
        except KeyError as exc:
            raise InvalidArgument(f"invalid descriptor: missing {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"invalid descriptor size {raw.get('size')!r}") from exc
        if size < 0:
            raise InvalidArgument(f"invalid descriptor for {digest}: negative size {size}")
        plat = raw.get("platform")
        return cls(media_type, digest, size, dict(raw.get("annotations") or {}),
                   Platform.from_json(plat) if isinstance(plat, Mapping) else None,
                   tuple(raw.get("urls") or ()), str(raw.get("artifactType") or ""))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": str(self.media_type), "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out
