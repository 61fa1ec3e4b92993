"""Media types of OCI and Docker v2 schema 2 objects.

May import: berth.errors.
"""

from __future__ import annotations

from enum import StrEnum

from berth.errors import InvalidArgument


class MediaType(StrEnum):
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
    OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    OCI_EMPTY = "application/vnd.oci.empty.v1+json"
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
    DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

    @classmethod
    def parse(cls, text: str) -> MediaType:
        try:
            return cls(text)
        except ValueError:
            raise InvalidArgument(f"unknown media type {text!r}") from None

    @property
    def is_manifest(self) -> bool:
        return self in (MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST)

    @property
    def is_index(self) -> bool:
        return self in (MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST)

    @property
    def is_config(self) -> bool:
        return self in (MediaType.OCI_CONFIG, MediaType.DOCKER_CONFIG)

    @property
    def is_layer(self) -> bool:
        return self in _LAYERS

    @property
    def compression(self) -> str:
        """'gzip', 'zstd' or 'none' for a layer type."""
        if self in _GZIP:
            return "gzip"
        if self in _ZSTD:
            return "zstd"
        if self in _LAYERS:
            return "none"
        raise InvalidArgument(f"media type {self} is not a layer")


_GZIP = frozenset({MediaType.OCI_LAYER_GZIP, MediaType.OCI_LAYER_NONDIST_GZIP, MediaType.DOCKER_LAYER_GZIP,
                   MediaType.DOCKER_LAYER_FOREIGN_GZIP})
_ZSTD = frozenset({MediaType.OCI_LAYER_ZSTD, MediaType.OCI_LAYER_NONDIST_ZSTD})
_LAYERS = _GZIP | _ZSTD | frozenset({MediaType.OCI_LAYER, MediaType.OCI_LAYER_NONDIST, MediaType.DOCKER_LAYER})

MANIFEST_ACCEPT = (MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST, MediaType.DOCKER_MANIFEST_LIST,
                   MediaType.OCI_INDEX)
