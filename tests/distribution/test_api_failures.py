"""Failed pulls through berthd (docker CLI and raw API) leave nothing cached or tagged, and the next pull works.

The misbehaving registry (tests/distribution/fake.py) runs in a thread of the test process; berthd reaches it
over loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.distribution.fake import FakeRegistry
from tests.images.archives import simple_layer

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(180)]


class ThreadedFake:
    """A FakeRegistry served by an event loop in a background thread."""

    def __init__(self, **kwargs: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.reg = FakeRegistry(**kwargs)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.reg.__aenter__(), self.loop).result(10)
        return self.reg

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.reg.__aexit__(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def berthd() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as b:
        yield b


def blob_files(b: PrivateBerthd) -> set[str]:
    return {p.name for p in (b.root / "content" / "blobs" / "sha256").iterdir()}


LAYERS = [simple_layer({"a.txt": b"a" * 4000}), simple_layer({"b.txt": b"b" * 400_000})]


def test_a_lying_blob_fails_the_pull_naming_it_and_leaves_nothing(berthd: PrivateBerthd) -> None:
    with ThreadedFake() as reg:
        digest = reg.add_image("bad/app", "1", LAYERS)
        manifest = json.loads(reg.manifests[("bad/app", digest)][0])
        bad = manifest["layers"][1]["digest"]
        reg.behaviour.corrupt.add(bad)
        before = blob_files(berthd)
        proc = berthd.docker("pull", f"{reg.address}/bad/app:1", check=False)
        assert proc.returncode != 0 and bad.encode() in proc.stderr
        assert berthd.docker("images", "-q").stdout.strip() == b""
        assert blob_files(berthd) == before            # config and the good layer were collected again
        reg.behaviour.corrupt.clear()
        out = berthd.docker("pull", f"{reg.address}/bad/app:1").stdout.decode()
        assert f"Digest: {digest}" in out
        assert berthd.docker("images", "-q").stdout.strip() != b""


@pytest.mark.parametrize("case", ["lying-manifest", "huge-manifest", "truncated"])
def test_other_lies_are_refused_and_the_next_pull_works(berthd: PrivateBerthd, case: str) -> None:
    with ThreadedFake() as reg:
        digest = reg.add_image("x/app", "1", LAYERS)
        data, media_type = reg.manifests[("x/app", digest)]
        layer = json.loads(data)["layers"][1]["digest"]
        if case == "lying-manifest":
            reg.behaviour.lie_manifest_digest = True
            named = digest
        elif case == "huge-manifest":
            raw = json.loads(data)
            raw["annotations"] = {"pad": "x" * (4 << 20)}
            reg.manifests[("x/app", "1")] = (json.dumps(raw).encode(), media_type)
            named = "x/app:1"
        else:
            reg.behaviour.truncate[layer] = 10
            named = layer
        status, body = berthd.api("POST", f"/images/create?fromImage={reg.address}/x/app&tag=1")
        text = body.decode()
        assert (status >= 400 and named in json.loads(body)["message"]) or \
            (status == 200 and '"error"' in text and named in text), (status, text)
        assert berthd.docker("images", "-q").stdout.strip() == b""
        reg.behaviour = type(reg.behaviour)()
        reg.manifests[("x/app", "1")] = (data, media_type)
        berthd.docker("pull", f"{reg.address}/x/app:1")
        if case == "truncated":   # the partial of the cut blob was resumed
            ranges = [s.headers.get("Range") for s in reg.seen if s.path.endswith(layer)]
            assert ranges[-1] is not None


def test_credentials_from_x_registry_auth_do_not_follow_a_redirect_to_another_host(berthd: PrivateBerthd,
                                                                                   tmp_path: Path) -> None:
    with ThreadedFake(auth="basic", users={"alice": "pw"}) as reg, ThreadedFake(host="127.0.0.2") as cdn:
        cdn.blobs = reg.blobs
        reg.add_image("priv/app", "1", LAYERS)
        reg.behaviour.redirect_blobs_to = f"http://{cdn.address}"
        config = tmp_path / "cfg"
        config.mkdir()
        (config / "config.json").write_text(json.dumps({"auths": {reg.address: {"auth": base64.b64encode(
            b"alice:pw").decode()}}}))
        berthd.docker("pull", f"{reg.address}/priv/app:1", env={"DOCKER_CONFIG": str(config)})
        assert cdn.seen and all("Authorization" not in s.headers for s in cdn.seen)
        assert any(s.headers.get("Authorization", "").startswith("Basic ") for s in reg.seen)
