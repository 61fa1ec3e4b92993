"""Five parallel pulls of one image while prunes run (security-cases.md case 25; containerd#1545, moby#9718):
every pull succeeds, no "locked" or "missing blob" error, every blob is stored once and verifies, and a prune
never deletes what an in-flight pull holds. The registry is the in-process fake (tests/distribution/fake.py) on
127.0.0.1, slowed down so that the prunes land in the middle of the pulls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from berth.content.store import BlobStore
from tests.berthd import PrivateBerthd
from tests.distribution.test_api_failures import ThreadedFake
from tests.images.archives import simple_layer

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]
LAYERS = [simple_layer({"a.txt": b"a" * 4000}), simple_layer({"b.txt": b"b" * 900_000}),
          simple_layer({"c.txt": b"c" * 300_000})]


@pytest.fixture
def berthd() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as b:
        yield b


def blob_files(b: PrivateBerthd) -> set[str]:
    return {p.name for p in (b.root / "content" / "blobs" / "sha256").iterdir()}


def test_parallel_pulls_under_prunes_all_succeed_and_store_each_blob_once(berthd: PrivateBerthd) -> None:
    b = berthd
    with ThreadedFake() as reg:
        digest = reg.add_image("team/app", "1", LAYERS)
        reg.behaviour.blob_delay = 0.4
        ref = f"{reg.address}/team/app:1"
        results: list[tuple[int, bytes]] = []
        lock = threading.Lock()

        def pull() -> None:
            proc = b.docker("pull", ref, check=False)
            with lock:
                results.append((proc.returncode, proc.stderr))

        pullers = [threading.Thread(target=pull) for _ in range(5)]
        for t in pullers:
            t.start()
        prunes = 0
        while any(t.is_alive() for t in pullers):
            # an image made and removed each round: its removal runs the content GC in the middle of the pulls
            # (docker system prune also calls /build/prune, which berthd does not serve yet)
            junk = f"junk:{prunes}"
            b.docker("import", "-", junk, input=simple_layer({"junk": str(prunes).encode()}))
            for args in (("rmi", junk), ("image", "prune", "-f"), ("container", "prune", "-f")):
                proc = b.docker(*args, check=False)
                assert proc.returncode == 0, proc.stderr
            prunes += 1
        for t in pullers:
            t.join()
        assert prunes >= 2
        assert [code for code, _ in results] == [0] * 5, results
        assert not any(b"locked" in err or b"blob unknown" in err.lower() for _, err in results), results
        # the image is whole: its manifest, config and layers are all in the store, each once, all verified
        manifest = json.loads(reg.manifests[("team/app", digest)][0])
        wanted = {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"]), digest}
        have = blob_files(b)
        assert {d.split(":")[1] for d in wanted} <= have
        assert BlobStore(b.root / "content").check() == []
        inspect = json.loads(b.docker("image", "inspect", ref).stdout)[0]
        assert len(inspect["RootFS"]["Layers"]) == len(LAYERS)
        # each blob was fetched from the registry as few times as one pull needs, not once per puller
        fetched = [s.path.rsplit("/", 1)[1] for s in reg.seen if "/blobs/" in s.path and s.method == "GET"]
        for layer in manifest["layers"]:
            assert fetched.count(layer["digest"]) <= 2, (layer["digest"], fetched.count(layer["digest"]))
