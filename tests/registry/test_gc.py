"""Garbage collection: unreferenced blobs go, referenced and young ones stay, and a gc run while the server
takes pushes never leaves an accepted manifest pointing at a missing blob. Upload sessions expire.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from berth.errors import NotFound
from berth.oci.digest import Digest
from berth.registry.gc import collect
from berth.registry.manifests import parse_manifest
from berth.registry.names import RepoName, Tag
from berth.registry.storage import FilesystemStorage
from berth.registry.uploads import UploadTable
from tests.registry.client import error_codes, push_blob, push_manifest, url
from tests.registry.servers import PYTHON, REPO_ROOT, Image, make_image, start_berth


class Clock:
    def __init__(self) -> None:
        self.now = time.time()  # links get real mtimes

    def __call__(self) -> float:
        return self.now


def store_image(storage: FilesystemStorage, repo: RepoName, img: Image, tag: str) -> Digest:
    for b in img.blobs:
        d = storage.blobs.put_bytes(b.data)
        storage.link_blob(repo, d)
    return storage.put_manifest(repo, Tag(tag), img.manifest.data,
                                parse_manifest(img.manifest.data, img.manifest.media_type))


def test_gc_removes_what_no_manifest_references_and_keeps_the_rest(tmp_path: Path) -> None:
    clock = Clock()
    storage = FilesystemStorage(tmp_path, clock)
    repo = RepoName("team/app")
    shared = {"base": b"shared base layer"}
    keep, drop = make_image([shared, {"k": b"kept"}]), make_image([shared, {"d": os.urandom(5000)}])
    store_image(storage, repo, keep, "keep")
    dropped = store_image(storage, repo, drop, "drop")
    storage.delete_manifest(repo, dropped)
    clock.now += 7200
    report = collect(storage, grace=3600, clock=clock)
    gone = {str(d) for d in report.removed}
    assert gone == {drop.manifest.digest, drop.config.digest, drop.layers[1].digest}
    assert report.bytes_freed > 5000
    assert report.links_removed == 2
    assert storage.get_manifest(repo, Tag("keep")).data == keep.manifest.data
    for b in keep.blobs:
        assert storage.blob_size(repo, Digest.parse(b.digest)) == len(b.data)
    with pytest.raises(NotFound):
        storage.blob_size(repo, Digest.parse(drop.layers[1].digest))
    assert storage.blobs.check() == []


def test_gc_keeps_blobs_linked_within_the_grace_period(tmp_path: Path) -> None:
    clock = Clock()
    storage = FilesystemStorage(tmp_path, clock)
    repo = RepoName("team/app")
    d = storage.blobs.put_bytes(b"uploaded, manifest not pushed yet")
    storage.link_blob(repo, d)
    os.utime(tmp_path / "repositories/team/app/_layers" / d.hex, (clock.now, clock.now))
    assert collect(storage, grace=3600, clock=clock).removed == ()
    clock.now += 3601
    assert collect(storage, grace=3600, clock=clock, dry_run=True).removed == (d,)
    assert storage.blobs.has(d)  # a dry run deletes nothing
    assert collect(storage, grace=3600, clock=clock).removed == (d,)
    assert not storage.blobs.has(d)


def test_gc_keeps_an_index_and_its_children(tmp_path: Path) -> None:
    clock = Clock()
    storage = FilesystemStorage(tmp_path, clock)
    repo = RepoName("multi")
    img = make_image([{"a": b"child"}])
    child = store_image(storage, repo, img, "child")
    storage.delete_manifest(repo, Tag("child"))  # untagged, but the index still references it
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{**img.manifest.descriptor()}]}).encode()
    storage.put_manifest(repo, Tag("multi"), index, parse_manifest(index, "application/vnd.oci.image.index.v1+json"))
    clock.now += 7200
    assert collect(storage, grace=0, clock=clock).removed == ()
    assert storage.get_manifest(repo, child).data == img.manifest.data


def test_idle_upload_sessions_expire(tmp_path: Path) -> None:
    clock = Clock()
    storage = FilesystemStorage(tmp_path, clock)
    table = UploadTable(storage, ttl=60, clock=clock)
    session = storage.start_upload(RepoName("up"))

    async def write() -> None:
        async with table.writer(session) as w:
            w.write(b"partial data")

    asyncio.run(write())
    assert table.peek_offset(session) == len(b"partial data")
    assert table.expire() == []
    clock.now += 61
    os.utime(tmp_path / "uploads" / f"{session.id}.json", (clock.now - 61, clock.now - 61))
    assert table.expire() == [session.id]
    with pytest.raises(NotFound):
        storage.upload_session(RepoName("up"), session.id)
    assert os.listdir(tmp_path / "content" / "ingest") == []


@pytest.mark.slow
def test_gc_while_pushing_never_leaves_a_manifest_without_its_blobs(tmp_path: Path) -> None:
    with start_berth(tmp_path) as server:
        accepted: list[Image] = []
        rejected = 0
        stop = threading.Event()

        def gc_loop() -> None:
            while not stop.is_set():
                subprocess.run([PYTHON, "-m", "berth.registry", "gc", "--root", str(server.root), "--grace", "0"],
                               check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})

        t = threading.Thread(target=gc_loop)
        t.start()
        try:
            for i in range(40):
                img = make_image([{"shared": b"base"}, {f"f{i}": os.urandom(20_000)}])
                for b in img.blobs:
                    push_blob(server, "race/app", b)
                r = push_manifest(server, "race/app", f"t{i}", img.manifest)
                if r.status_code == 201:
                    accepted.append(img)
                else:
                    assert r.status_code == 400 and error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"], r.text
                    rejected += 1
        finally:
            stop.set()
            t.join()
        subprocess.run([PYTHON, "-m", "berth.registry", "gc", "--root", str(server.root), "--grace", "0"],
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
        assert accepted, "every push lost its race with gc"
        for img in accepted:
            for b in (*img.blobs, img.manifest):
                kind = "manifests" if b is img.manifest else "blobs"
                r = server.session.get(url(server, f"/v2/race/app/{kind}/{b.digest}"),
                                       headers={"Accept": img.manifest.media_type})
                assert r.status_code == 200 and r.content == b.data
