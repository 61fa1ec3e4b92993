"""Images through berthd's Engine API, driven by the real docker CLI: load, save, import, tag, rmi, history,
inspect; bad input refused with nothing registered; concurrent loads; kill -9 during a load."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from berth.content.store import BlobStore
from tests.berthd import PrivateBerthd, berthd  # noqa: F401
from tests.images.archives import docker_archive, sha, simple_layer, tar_bytes
from tests.peers import busybox_rootfs_tar

pytestmark = pytest.mark.root


def _images(b: PrivateBerthd) -> list[str]:
    out = b.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    return sorted(out)


def test_load_then_save_round_trips_an_image(berthd: PrivateBerthd, tmp_path: Path) -> None:  # noqa: F811
    layer1 = simple_layer({"etc/greeting": b"hello\n", "bin/tool": b"#!/bin/sh\n"})
    layer2 = simple_layer({"etc/greeting": b"bye\n"})
    archive = docker_archive([layer1, layer2], tags=["roundtrip:1", "roundtrip:alias"])
    proc = berthd.docker("load", input=archive)
    assert proc.stdout.decode() == "Loaded image: roundtrip:1\nLoaded image: roundtrip:alias\n"
    assert {"roundtrip:1", "roundtrip:alias"} <= set(_images(berthd))
    inspect = json.loads(berthd.docker("image", "inspect", "roundtrip:1").stdout)[0]
    assert inspect["RootFS"]["Layers"] == [sha(layer1), sha(layer2)]
    assert inspect["Config"]["Cmd"] == ["sh"]
    out = tmp_path / "saved.tar"
    berthd.docker("save", "-o", str(out), "roundtrip:1")
    berthd.docker("rmi", "roundtrip:1", "roundtrip:alias")
    assert "roundtrip:1" not in _images(berthd)
    berthd.docker("load", "-i", str(out))
    again = json.loads(berthd.docker("image", "inspect", "roundtrip:1").stdout)[0]
    assert again["Id"] == inspect["Id"]


def test_import_makes_a_one_layer_image_with_changes(berthd: PrivateBerthd) -> None:  # noqa: F811
    rootfs = busybox_rootfs_tar()
    proc = berthd.docker("import", "-c", 'CMD ["sh"]', "-c", "ENV A=1", "-m", "from test", "-", "imported:1",
                         input=gzip.compress(rootfs, 1))
    image_id = proc.stdout.decode().strip()
    assert image_id.startswith("sha256:")
    inspect = json.loads(berthd.docker("image", "inspect", "imported:1").stdout)[0]
    assert inspect["Id"] == image_id
    assert inspect["Config"]["Cmd"] == ["sh"] and inspect["Config"]["Env"] == ["A=1"]
    assert inspect["RootFS"]["Layers"] == [sha(rootfs)]
    assert inspect["Comment"] == "from test"
    history = berthd.docker("history", "--format", "{{.Comment}}", "imported:1").stdout.decode()
    assert history == "from test\n"


def test_tag_and_rmi_follow_dockers_rules(berthd: PrivateBerthd) -> None:  # noqa: F811
    berthd.docker("load", input=docker_archive([simple_layer({"a": b"tags"})], tags=["tagme:1"]))
    berthd.docker("tag", "tagme:1", "localhost:5000/team/tagme:2")
    out = berthd.docker("rmi", "localhost:5000/team/tagme:2").stdout.decode()
    assert out == "Untagged: localhost:5000/team/tagme:2\n"
    image_id = berthd.docker("image", "inspect", "--format", "{{.Id}}", "tagme:1").stdout.decode().strip()
    berthd.docker("tag", "tagme:1", "tagme:2")
    refused = berthd.docker("rmi", image_id[7:19], check=False)
    assert refused.returncode == 1
    assert "image is referenced in multiple repositories" in refused.stderr.decode() or \
        "must be forced" in refused.stderr.decode()
    out = berthd.docker("rmi", "-f", image_id[7:19]).stdout.decode().splitlines()
    assert out[:2] == ["Untagged: tagme:1", "Untagged: tagme:2"] and out[2] == f"Deleted: {image_id}"
    missing = berthd.docker("rmi", "tagme:1", check=False)
    assert missing.returncode == 1 and "No such image: tagme:1" in missing.stderr.decode()


@pytest.mark.parametrize("case", ["traversal", "absolute_hardlink", "bad_diff_id", "truncated", "corrupt_gzip",
                                  "bad_whiteout", "bad_tag", "no_manifest"])
def test_bad_archives_are_refused_and_nothing_is_registered(berthd: PrivateBerthd, tmp_path: Path,  # noqa: F811
                                                            case: str) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("untouched")
    good = simple_layer({"ok": b"ok"})
    if case == "traversal":
        archive = docker_archive([tar_bytes([("../../../../../../" + str(canary) + "/evil", b"x", {})])],
                                 tags=["bad:1"])
    elif case == "absolute_hardlink":
        archive = docker_archive([tar_bytes([("link", None, {"type": b"1", "linkname": "../../../etc/passwd"})])],
                                 tags=["bad:1"])
    elif case == "bad_diff_id":
        archive = docker_archive([good], tags=["bad:1"], diff_ids=[sha(b"something else")])
    elif case == "truncated":
        archive = docker_archive([good], tags=["bad:1"])[:3000]
    elif case == "corrupt_gzip":
        data = bytearray(gzip.compress(docker_archive([good], tags=["bad:1"])))
        data[len(data) // 2] ^= 0xFF
        archive = bytes(data)
    elif case == "bad_whiteout":
        archive = docker_archive([tar_bytes([(".wh..", b"", {})])], tags=["bad:1"])
    elif case == "bad_tag":
        archive = docker_archive([good], tags=["Bad:1"])
    else:
        archive = tar_bytes([("hello", b"x", {})])
    blobs_before = set(os.listdir(berthd.root / "content" / "blobs" / "sha256"))
    proc = berthd.docker("load", input=archive, check=False)
    assert proc.returncode != 0, proc.stdout
    assert proc.stderr.strip(), "the refusal must say why"
    assert "bad:1" not in _images(berthd)
    assert sorted(p.name for p in canary.iterdir()) == ["keep"] and (canary / "keep").read_text() == "untouched"
    assert set(os.listdir(berthd.root / "content" / "blobs" / "sha256")) <= blobs_before
    assert BlobStore(berthd.root / "content").check() == []


def test_five_concurrent_loads_store_each_blob_once(berthd: PrivateBerthd) -> None:  # noqa: F811
    layer = simple_layer({f"f{i}": os.urandom(64 * 1024) for i in range(16)})
    archive = docker_archive([layer], tags=["concurrent:1"])
    results: list[subprocess.CompletedProcess[bytes]] = []

    def load() -> None:
        results.append(berthd.docker("load", input=archive, check=False))

    threads = [threading.Thread(target=load) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0] * 5, [r.stderr for r in results]
    blobs = berthd.root / "content" / "blobs" / "sha256"
    assert (blobs / sha(layer)[7:]).exists()
    assert len([p for p in os.listdir(blobs) if p == sha(layer)[7:]]) == 1
    assert BlobStore(berthd.root / "content").check() == []


@pytest.mark.slow
def test_kill_9_during_a_load_leaves_no_half_image_and_the_load_then_succeeds(tmp_path: Path) -> None:
    layers = [simple_layer({f"big{i}": os.urandom(32 * 1024 * 1024)}) for i in range(6)]
    archive = tmp_path / "big.tar"
    archive.write_bytes(docker_archive(layers, tags=["crash:1"]))
    with PrivateBerthd() as b:
        loader = subprocess.Popen(["/usr/local/bin/docker", "-H", b.host, "load", "-i", str(archive)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        blobs = b.root / "content" / "blobs" / "sha256"
        deadline = time.monotonic() + 30
        while len(os.listdir(blobs)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)   # kill once a part of the image is already in the store
        b.kill()
        loader.wait(timeout=30)
        b.start()
        assert "crash:1" not in _images(b)
        assert BlobStore(b.root / "content").check() == []
        b.docker("load", "-i", str(archive))
        assert "crash:1" in _images(b)
        inspect = json.loads(b.docker("image", "inspect", "crash:1").stdout)[0]
        assert inspect["RootFS"]["Layers"] == [sha(layer) for layer in layers]


def test_bootstrap_busybox_makes_a_runnable_base_image_offline(berthd: PrivateBerthd) -> None:  # noqa: F811
    status, body = berthd.api("POST", "/v1.44/berth/images/bootstrap?base=busybox")
    assert status == 200
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert not [x for x in lines if "error" in x], lines
    image_id = next(x["aux"]["ID"] for x in lines if "aux" in x)
    inspect = json.loads(berthd.docker("image", "inspect", "busybox:latest").stdout)[0]
    assert inspect["Id"] == image_id and inspect["Config"]["Cmd"] == ["sh"]
    assert inspect["Size"] > 500_000
    # the same busybox gives the same layer (timestamps come from the binary)
    status, body = berthd.api("POST", "/berth/images/bootstrap?base=busybox&tag=again:1")
    again = json.loads(berthd.docker("image", "inspect", "again:1").stdout)[0]
    assert again["RootFS"] == inspect["RootFS"]
    status, body = berthd.api("POST", "/berth/images/bootstrap?base=alpine")
    assert b"unknown base 'alpine'" in body
