"""The real docker CLI pushes to and pulls from berth's registry through a private dockerd (20.10).

That dockerd lives in its own network namespace, so the registry is started inside the same one
(`nsenter --net=`); dockerd treats 127.0.0.0/8 registries as plain-HTTP by default.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import PeerError, PrivateDockerd, layered_image_archive
from tests.registry.servers import free_port, start_berth

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDockerd]:
    try:
        d = PrivateDockerd(base_dir=Path("/tmp")).start()
    except PeerError as exc:
        pytest.skip(f"no private dockerd: {exc}")
    try:
        d.docker("load", input=layered_image_archive("berth-layered:1"))
        yield d
    finally:
        d.stop()


def run(d: PrivateDockerd, *args: str, input: bytes | None = None) -> str:
    p = d.docker(*args, input=input, check=False)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return str(p.stdout.decode() if isinstance(p.stdout, bytes) else p.stdout)


def test_docker_push_then_pull_and_run(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    port = free_port()
    with start_berth(tmp_path, netns=f"/run/netns/{dockerd.netns}", port=port) as server:
        ref = f"127.0.0.1:{port}/team/layered:1"
        run(dockerd, "tag", "berth-layered:1", ref)
        out = run(dockerd, "push", ref)
        assert "digest: sha256:" in out
        run(dockerd, "rmi", ref)
        pushed_id = json.loads(run(dockerd, "inspect", "berth-layered:1"))[0]["Id"]
        run(dockerd, "rmi", "berth-layered:1")
        run(dockerd, "pull", ref)
        assert json.loads(run(dockerd, "inspect", ref))[0]["Id"] == pushed_id
        assert run(dockerd, "run", "--rm", "--network", "none", ref).strip() == "layered"
        run(dockerd, "tag", ref, "berth-layered:1")
        tags = server.root / "repositories" / "team" / "layered" / "_manifests" / "tags"
        assert sorted(p.name for p in tags.iterdir()) == ["1"]


def test_docker_login_push_pull_with_token_auth(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(htpasswd), "carol", "carol-pw"], check=True,
                   capture_output=True)
    acl = tmp_path / "acl.json"
    acl.write_text(json.dumps({"carol": {"carol/*": ["*"]}}))
    port = free_port()
    with start_berth(tmp_path, "--htpasswd", str(htpasswd), "--token-realm", f"http://127.0.0.1:{port}/token",
                     "--token-acl", str(acl), netns=f"/run/netns/{dockerd.netns}", port=port):
        registry = f"127.0.0.1:{port}"
        bad = dockerd.docker("login", "-u", "carol", "--password-stdin", registry, input=b"wrong\n", check=False)
        assert bad.returncode != 0
        run(dockerd, "login", "-u", "carol", "--password-stdin", registry, input=b"carol-pw\n")
        try:
            ref = f"{registry}/carol/app:v1"
            run(dockerd, "tag", "berth-layered:1", ref)
            run(dockerd, "push", ref)
            other = f"{registry}/someone/else:v1"
            run(dockerd, "tag", "berth-layered:1", other)
            denied = dockerd.docker("push", other, check=False)
            run(dockerd, "rmi", ref, other)
            run(dockerd, "pull", ref)
            run(dockerd, "rmi", ref)
        finally:
            dockerd.docker("logout", registry, check=False)
        assert denied.returncode != 0  # carol has no rights on someone/*
        err = (denied.stderr.decode() if isinstance(denied.stderr, bytes) else str(denied.stderr)).lower()
        assert "unauthorized" in err or "denied" in err or "authentication required" in err, err
