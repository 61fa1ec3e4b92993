"""Image manifests and indexes (OCI image spec and Docker v2 schema 2 / manifest lists).

May import: berth.errors, berth.oci.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidArgument, LimitExceeded, NotFound
from berth.oci.descriptor import Descriptor, Platform
from berth.oci.digest import Digest
from berth.oci.mediatype import MediaType

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def _load(data: bytes, what: str) -> Mapping[str, Any]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise LimitExceeded(f"{what} is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit for manifests")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"{what} is not a JSON object")
    return raw


def sniff_media_type(data: bytes) -> MediaType:
    """The media type a manifest or index declares (or implies, for OCI documents without mediaType)."""
    raw = _load(data, "manifest")
    declared = raw.get("mediaType")
    if declared:
        mt = MediaType.parse(str(declared))
        if mt in (MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED):
            raise InvalidArgument("Docker schema 1 manifests are not supported; push the image again with schema 2")
        return mt
    if raw.get("schemaVersion") == 1:
        raise InvalidArgument("Docker schema 1 manifests are not supported; push the image again with schema 2")
    if "manifests" in raw:
        return MediaType.OCI_INDEX
    if "config" in raw and "layers" in raw:
        return MediaType.OCI_MANIFEST
    raise InvalidArgument("cannot tell what kind of manifest this is: no mediaType, config or manifests")


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: MediaType
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Manifest:
        mt = MediaType.parse(str(raw.get("mediaType") or MediaType.OCI_MANIFEST))
        if not mt.is_manifest:
            raise InvalidArgument(f"expected an image manifest, got {mt}")
        if raw.get("schemaVersion") != 2:
            raise InvalidArgument(f"unsupported manifest schemaVersion {raw.get('schemaVersion')!r}; expected 2")
        if not isinstance(raw.get("config"), Mapping) or not isinstance(raw.get("layers"), list):
            raise InvalidArgument("invalid manifest: needs a config descriptor and a layers list")
        layers = tuple(Descriptor.from_json(d) for d in raw["layers"])
        subject = raw.get("subject")
        return cls(mt, Descriptor.from_json(raw["config"]), layers, dict(raw.get("annotations") or {}),
                   Descriptor.from_json(subject) if isinstance(subject, Mapping) else None,
                   str(raw.get("artifactType") or ""))

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        return cls.from_json(_load(data, "manifest"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": str(self.media_type)}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = [d.to_json() for d in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        """Canonical encoding used when berth creates a manifest (its digest is over these bytes)."""
        return json.dumps(self.to_json(), indent=3).encode()

    @property
    def is_image(self) -> bool:
        return self.config.media_type.is_config


@dataclass(frozen=True, slots=True)
class Index:
    media_type: MediaType
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Index:
        mt = MediaType.parse(str(raw.get("mediaType") or MediaType.OCI_INDEX))
        if not mt.is_index:
            raise InvalidArgument(f"expected an image index, got {mt}")
        if raw.get("schemaVersion") != 2 or not isinstance(raw.get("manifests"), list):
            raise InvalidArgument("invalid index: needs schemaVersion 2 and a manifests list")
        return cls(mt, tuple(Descriptor.from_json(d) for d in raw["manifests"]), dict(raw.get("annotations") or {}))

    @classmethod
    def parse(cls, data: bytes) -> Index:
        return cls.from_json(_load(data, "index"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": str(self.media_type),
                               "manifests": [d.to_json() for d in self.manifests]}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=3).encode()

    def select(self, want: Platform) -> Descriptor:
        """The manifest for `want`; an exact variant match beats one without a variant."""
        candidates = [d for d in self.manifests if d.media_type.is_manifest and d.platform is not None
                      and d.platform.matches(want)]
        if not candidates:
            offered = ", ".join(str(d.platform) for d in self.manifests if d.platform is not None) or "none"
            raise NotFound(f"no manifest for platform {want} in the image index (it offers: {offered}); "
                           f"choose one with --platform")
        exact = [d for d in candidates if d.platform is not None and d.platform.variant == want.variant]
        return (exact or candidates)[0]


def layer_digests(manifest: Manifest) -> Sequence[Digest]:
    return [d.digest for d in manifest.layers]
