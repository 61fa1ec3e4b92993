from __future__ import annotations

import json

import pytest

from berth.errors import InvalidArgument, LimitExceeded, NotFound
from berth.oci.config import ImageConfig
from berth.oci.descriptor import Platform
from berth.oci.digest import Digest
from berth.oci.manifest import MAX_MANIFEST_BYTES, Index, Manifest, sniff_media_type
from berth.oci.mediatype import MediaType

CFG = {"mediaType": MediaType.DOCKER_CONFIG, "digest": str(Digest.of(b"c")), "size": 1}
LAYER = {"mediaType": MediaType.DOCKER_LAYER_GZIP, "digest": str(Digest.of(b"l")), "size": 2}


def test_a_docker_manifest_round_trips() -> None:
    raw = {"schemaVersion": 2, "mediaType": MediaType.DOCKER_MANIFEST, "config": CFG, "layers": [LAYER]}
    m = Manifest.parse(json.dumps(raw).encode())
    assert m.layers[0].media_type.compression == "gzip"
    assert Manifest.from_json(m.to_json()) == m


def test_unknown_media_types_are_refused() -> None:
    raw = {"schemaVersion": 2, "config": CFG, "layers": [dict(LAYER, mediaType="application/x-weird")]}
    with pytest.raises(InvalidArgument, match="unknown media type 'application/x-weird'"):
        Manifest.parse(json.dumps(raw).encode())


def test_schema1_is_refused_with_a_next_step() -> None:
    with pytest.raises(InvalidArgument, match="schema 1"):
        sniff_media_type(json.dumps({"schemaVersion": 1, "name": "x"}).encode())


def test_an_oversized_manifest_is_refused() -> None:
    with pytest.raises(LimitExceeded, match="limit"):
        Manifest.parse(b" " * (MAX_MANIFEST_BYTES + 1))


def test_index_picks_the_host_platform_or_says_which_exist() -> None:
    mk = {"mediaType": MediaType.OCI_MANIFEST, "size": 1}
    raw = {"schemaVersion": 2, "manifests": [
        dict(mk, digest=str(Digest.of(b"1")), platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        dict(mk, digest=str(Digest.of(b"2")), platform={"os": "linux", "architecture": "amd64"}),
    ]}
    idx = Index.parse(json.dumps(raw).encode())
    assert idx.select(Platform.parse("linux/amd64")).digest == Digest.of(b"2")
    assert idx.select(Platform.parse("linux/arm64")).digest == Digest.of(b"1")
    with pytest.raises(NotFound, match="linux/s390x.*linux/arm64/v8, linux/amd64"):
        idx.select(Platform.parse("linux/s390x"))


def test_image_config_parses_docker_fields() -> None:
    raw = {"architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"], "Cmd": ["sh"],
           "ExposedPorts": {"80/tcp": {}}, "Labels": {"k": "v"}},
           "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(b"x"))]},
           "history": [{"created_by": "x", "empty_layer": True}]}
    cfg = ImageConfig.parse(json.dumps(raw).encode())
    assert cfg.config.cmd == ("sh",) and cfg.config.exposed_ports == ("80/tcp",)
    assert cfg.history[0].empty_layer
    assert ImageConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(InvalidArgument, match="rootfs"):
        ImageConfig.parse(json.dumps({"architecture": "amd64"}).encode())
