"""Round trips between berth and real peers: an image saved by a real dockerd loads into berth, berth saves it,
the dockerd loads berth's archive and `docker run` prints the same; the same through skopeo's docker-archive:
and oci-archive: transports."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import Daemon, seeded_daemon  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.interop]


@pytest.fixture(scope="module")
def engine() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as b:
        yield b


def _run(daemon: Daemon, ref: str) -> str:
    from tests.peers import docker
    return docker(daemon.host, "run", "--rm", "--network", "none", ref).stdout.decode()


def _skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


def test_dockerd_to_berth_to_dockerd(seeded_daemon: Daemon, engine: PrivateBerthd,  # noqa: F811
                                     tmp_path: Path) -> None:
    from tests.peers import docker
    ref = seeded_daemon.images.layered
    expected = _run(seeded_daemon, ref)
    original = tmp_path / "from-docker.tar"
    docker(seeded_daemon.host, "save", "-o", str(original), ref, seeded_daemon.images.busybox)
    out = engine.docker("load", "-i", str(original)).stdout.decode()
    assert f"Loaded image: {ref}" in out and "Loaded image: busybox:latest" in out
    docker_inspect = json.loads(docker(seeded_daemon.host, "image", "inspect", ref).stdout)[0]
    berth_inspect = json.loads(engine.docker("image", "inspect", ref).stdout)[0]
    assert berth_inspect["Id"] == docker_inspect["Id"]
    for key in ("Config", "RootFS", "Architecture", "Os", "Comment", "Author"):
        assert berth_inspect[key] == docker_inspect[key], key
    assert berth_inspect["Size"] == docker_inspect["Size"]
    saved = tmp_path / "from-berth.tar"
    engine.docker("save", "-o", str(saved), ref)
    docker(seeded_daemon.host, "tag", ref, "berth-roundtrip:orig")
    docker(seeded_daemon.host, "rmi", ref)
    docker(seeded_daemon.host, "load", "-i", str(saved))
    assert _run(seeded_daemon, ref) == expected
    reloaded = json.loads(docker(seeded_daemon.host, "image", "inspect", ref).stdout)[0]
    assert reloaded["Id"] == docker_inspect["Id"]


def test_skopeo_archives_load_into_berth_and_berth_archives_read_in_skopeo(
        seeded_daemon: Daemon, engine: PrivateBerthd, tmp_path: Path) -> None:  # noqa: F811
    from tests.peers import docker
    ref = seeded_daemon.images.layered
    expected = _run(seeded_daemon, ref)
    original = tmp_path / "orig.tar"
    docker(seeded_daemon.host, "save", "-o", str(original), ref)
    engine.docker("load", "-i", str(original))
    oci = tmp_path / "image.oci.tar"
    _skopeo("copy", f"docker-archive:{original}", f"oci-archive:{oci}:skopeo/oci:1")
    engine.docker("load", "-i", str(oci))
    dockerarch = tmp_path / "image.docker.tar"
    _skopeo("copy", f"docker-archive:{original}", f"docker-archive:{dockerarch}:skopeo/docker:1")
    engine.docker("load", "-i", str(dockerarch))
    # skopeo rewrites the config when it converts to OCI, so the ids may differ; the layers may not.
    layers = {engine.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", r).stdout.strip()
              for r in ("skopeo/oci:1", "skopeo/docker:1", ref)}
    assert len(layers) == 1
    saved = tmp_path / "berth.tar"
    engine.docker("save", "-o", str(saved), "skopeo/oci:1")
    for transport in ("docker-archive", "oci-archive"):
        back = tmp_path / f"back-{transport}.tar"
        _skopeo("copy", f"{transport}:{saved}", f"docker-archive:{back}:back/{transport}:1")
        docker(seeded_daemon.host, "load", "-i", str(back))
        assert _run(seeded_daemon, f"back/{transport}:1") == expected
