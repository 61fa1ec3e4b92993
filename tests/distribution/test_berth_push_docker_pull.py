"""The interop chain of issue 6, both ways: berth pushes (berthd, through the docker CLI) to berth's registry and a
real dockerd pulls the image from it and runs it; a real dockerd pushes there and berth pulls and runs it.

The private dockerd lives in its own network namespace, so the registry that serves its pull runs there too: a
second `berth registry serve` on the same storage root, inside that namespace, for its side of the chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import PeerError, PrivateDockerd, layered_image_archive
from tests.registry.servers import free_port, start_berth

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def dockerd() -> Iterator[PrivateDockerd]:
    try:
        d = PrivateDockerd(base_dir=Path("/tmp")).start()
    except PeerError as exc:
        pytest.fail(f"no private dockerd: {exc}")
    try:
        yield d
    finally:
        d.stop()


def test_berth_push_then_docker_pull_and_run(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    port = free_port()
    ref = f"127.0.0.1:{port}/chain/bb:1"
    with PrivateBerthd() as b:
        assert b.api("POST", "/berth/images/bootstrap?base=busybox")[0] == 200
        b.docker("tag", "busybox", ref)
        pushed_id = json.loads(b.docker("image", "inspect", ref).stdout)[0]["Id"]
        with start_berth(tmp_path, port=port):
            out = b.docker("push", ref).stdout.decode()
            assert "digest: sha256:" in out, out
            digest = out.split("digest: ")[1].split()[0]
    with start_berth(tmp_path, netns=f"/run/netns/{dockerd.netns}", port=port):
        dockerd.docker("pull", ref)
        seen = json.loads(dockerd.docker("image", "inspect", ref).stdout)[0]
        assert seen["Id"] == pushed_id                       # the same config digest: the same image
        assert seen["RepoDigests"] == [f"127.0.0.1:{port}/chain/bb@{digest}"]
        ran = dockerd.docker("run", "--rm", "--network", "none", ref, "echo", "pushed by berth")
        assert ran.stdout == b"pushed by berth\n"


def test_docker_push_then_berth_pull_and_run(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    port = free_port()
    ref = f"127.0.0.1:{port}/chain/layered:1"
    dockerd.docker("load", input=layered_image_archive("berth-layered:1"))
    dockerd.docker("tag", "berth-layered:1", ref)
    pushed_id = json.loads(dockerd.docker("image", "inspect", ref).stdout)[0]["Id"]
    with start_berth(tmp_path, netns=f"/run/netns/{dockerd.netns}", port=port):
        out = dockerd.docker("push", ref).stdout.decode()
        digest = out.split("digest: ")[1].split()[0]
    with start_berth(tmp_path, port=port), PrivateBerthd() as b:
        b.docker("pull", ref)
        seen = json.loads(b.docker("image", "inspect", ref).stdout)[0]
        assert seen["Id"] == pushed_id
        assert seen["RepoDigests"] == [f"127.0.0.1:{port}/chain/layered@{digest}"]
        assert b.docker("run", "--rm", ref).stdout == b"layered\n"
