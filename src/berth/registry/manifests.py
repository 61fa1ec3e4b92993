"""What the registry needs to know of a pushed manifest: its type, the blobs and manifests it references, its subject.

Deliberately lenient about media types of configs and layers (OCI artifacts use their own), strict about
structure and digests. The referrers API's descriptors are built here.
May import: berth.oci, berth.errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidArgument
from berth.oci.digest import Digest
from berth.oci.mediatype import MediaType

MANIFEST_TYPES = frozenset({MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST})
MAX_MANIFEST_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    media_type: str
    blobs: tuple[Digest, ...]          # config and layers: must be in the repository
    manifests: tuple[Digest, ...]      # an index's children: must be in the repository
    subject: Digest | None
    artifact_type: str
    annotations: Mapping[str, str]

    def referrer_descriptor(self, digest: Digest, size: int) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(digest), "size": size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def _descriptor_digest(raw: Any, where: str) -> tuple[Digest, str]:
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"{where} is not a descriptor object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidArgument(f"{where} has no mediaType")
    if not isinstance(digest, str):
        raise InvalidArgument(f"{where} has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{where} has no valid size")
    return Digest.parse(digest), media_type


def parse_manifest(data: bytes, content_type: str) -> ManifestInfo:
    """Check a manifest or index as pushed with Content-Type content_type (the type wins over `mediaType`)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise InvalidArgument("manifest is not a JSON object")
    declared = raw.get("mediaType")
    media_type = content_type.split(";")[0].strip() or (declared if isinstance(declared, str) else "")
    if not media_type:
        media_type = str(MediaType.OCI_INDEX if "manifests" in raw else MediaType.OCI_MANIFEST)
    if isinstance(declared, str) and declared and declared != media_type:
        raise InvalidArgument(f"manifest declares mediaType {declared} but was sent as {media_type}")
    if raw.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported schemaVersion {raw.get('schemaVersion')!r}; expected 2")
    blobs: list[Digest] = []
    children: list[Digest] = []
    if media_type in MANIFEST_TYPES:
        blobs.append(_descriptor_digest(raw.get("config"), "config")[0])
        layers = raw.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument("manifest has no layers list")
        blobs.extend(_descriptor_digest(d, f"layer {i}")[0] for i, d in enumerate(layers))
        artifact_type = raw.get("artifactType") or raw["config"].get("mediaType", "")
    elif media_type in INDEX_TYPES:
        manifests = raw.get("manifests")
        if not isinstance(manifests, list):
            raise InvalidArgument("index has no manifests list")
        children.extend(_descriptor_digest(d, f"manifest {i}")[0] for i, d in enumerate(manifests))
        artifact_type = raw.get("artifactType") or ""
    else:
        raise InvalidArgument(f"unsupported manifest media type {media_type!r}")
    subject = _descriptor_digest(raw["subject"], "subject")[0] if raw.get("subject") is not None else None
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        raise InvalidArgument("manifest annotations are not an object")
    if not isinstance(artifact_type, str):
        raise InvalidArgument("manifest artifactType is not a string")
    return ManifestInfo(media_type, tuple(blobs), tuple(children), subject, artifact_type,
                        {str(k): str(v) for k, v in annotations.items()})
