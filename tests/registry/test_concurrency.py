"""Many clients at once: the same blobs and tags pushed concurrently, uploads interleaved, pulls during pushes.
Every accepted push is complete afterwards and the blob store holds no corrupt or stray file."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from berth.content import BlobStore
from berth.errors import InvalidArgument
from berth.registry.names import RepoName
from tests.registry.client import push_image, url
from tests.registry.servers import Image, RegistryServer, make_image, start_berth


def in_threads(n: int, fn: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def pulled_ok(server: RegistryServer, repo: str, ref: str, img: Image) -> None:
    r = server.session.get(url(server, f"/v2/{repo}/manifests/{ref}"), headers={"Accept": img.manifest.media_type})
    assert r.status_code == 200 and r.content == img.manifest.data
    for b in img.blobs:
        assert server.session.get(url(server, f"/v2/{repo}/blobs/{b.digest}")).content == b.data


def test_concurrent_pushes_of_the_same_and_of_different_images(tmp_path: Path) -> None:
    shared = make_image([{"base": os.urandom(300_000)}, {"top": os.urandom(100_000)}])
    own = [make_image([{"base": b"x"}, {f"f{i}": os.urandom(50_000)}]) for i in range(6)]
    with start_berth(tmp_path) as server:
        def push(i: int) -> None:
            session_server = RegistryServer(server.kind, server.url, server.root, server.proc, server.log)
            push_image(session_server, "same/repo", shared, "latest")
            push_image(session_server, f"own/r{i}", own[i], "v1")
            push_image(session_server, "same/repo", own[i], f"t{i}")
            pulled_ok(session_server, "same/repo", "latest", shared)
            session_server.session.close()

        in_threads(6, push)
        for i, img in enumerate(own):
            pulled_ok(server, f"own/r{i}", "v1", img)
            pulled_ok(server, "same/repo", f"t{i}", img)
        tags = server.session.get(url(server, "/v2/same/repo/tags/list")).json()["tags"]
        assert tags == sorted(["latest", *(f"t{i}" for i in range(6))])
    assert BlobStore(server.root / "content").check() == []
    assert os.listdir(server.root / "content" / "ingest") == []


@given(st.text(alphabet="abz09._-/A%", min_size=1, max_size=40))
def test_a_valid_repository_name_never_makes_an_unsafe_or_hidden_path(text: str) -> None:
    try:
        name = RepoName.parse(text)
    except InvalidArgument:
        return
    for part in name.components:
        assert part not in ("", ".", "..")
        assert not part.startswith(("_", ".", "-"))
        assert "/" not in part and "%" not in part
