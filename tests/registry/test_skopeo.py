"""skopeo (the reference client) copies images into and out of berth's registry, unchanged byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.registry.conftest import needs
from tests.registry.servers import RegistryServer, make_image, skopeo, write_oci_layout

pytestmark = pytest.mark.interop


def test_skopeo_copies_an_image_in_and_out_unchanged(berth_registry: RegistryServer, tmp_path: Path) -> None:
    needs("skopeo")
    img = make_image([{"etc/a": os.urandom(200_000)}, {"usr/b": os.urandom(1_500_000)}, {"c": b"small"}])
    src = write_oci_layout(tmp_path / "src", img, "v1")
    ref = f"docker://{berth_registry.host}/interop/skopeo:v1"
    p = skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", ref)
    assert p.returncode == 0, p.stderr
    p = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'out'}:v1")
    assert p.returncode == 0, p.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == img.manifest.digest
    for b in (*img.blobs, img.manifest):
        assert (tmp_path / "out" / "blobs" / "sha256" / b.digest.split(":")[1]).read_bytes() == b.data
    p = skopeo("inspect", "--tls-verify=false", ref)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["Digest"] == img.manifest.digest
    assert info["RepoTags"] == ["v1"]
    assert info["Labels"] == {"org.example.team": "berth"}


def test_skopeo_copies_between_two_repositories_by_mounting(berth_registry: RegistryServer, tmp_path: Path) -> None:
    needs("skopeo")
    img = make_image([{"x": os.urandom(50_000)}])
    src = write_oci_layout(tmp_path / "src", img, "v1")
    a, b = f"docker://{berth_registry.host}/interop/a:v1", f"docker://{berth_registry.host}/interop/b:v1"
    assert skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", a).returncode == 0
    p = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", a, b)
    assert p.returncode == 0, p.stderr
    p = skopeo("list-tags", "--tls-verify=false", f"docker://{berth_registry.host}/interop/b")
    assert json.loads(p.stdout)["Tags"] == ["v1"]


def test_skopeo_delete_removes_the_manifest(berth_registry: RegistryServer, tmp_path: Path) -> None:
    needs("skopeo")
    img = make_image([{"x": b"to delete"}])
    src = write_oci_layout(tmp_path / "src", img, "v1")
    ref = f"docker://{berth_registry.host}/interop/del:v1"
    assert skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", ref).returncode == 0
    p = skopeo("delete", "--tls-verify=false", ref)
    assert p.returncode == 0, p.stderr
    assert skopeo("inspect", "--tls-verify=false", ref).returncode != 0
