"""A fully cached rebuild writes no image record when its tag is in place already (and no file of its context:
test_intake), a changed COPY source misses from that step on, and the cache index is read again only when it
changed (another BuildCache on the same root, as after a daemon restart, sees new entries)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.build.cache import BuildCache
from berth.oci.digest import Digest
from tests.berthd import PrivateBerthd

CLASSIC = {"DOCKER_BUILDKIT": "0"}


def test_the_cache_index_is_shared_through_its_file(tmp_path: Path) -> None:
    one = BuildCache(tmp_path, lambda _: True)
    two = BuildCache(tmp_path, lambda _: True)
    a, b = Digest.parse("sha256:" + "a" * 64), Digest.parse("sha256:" + "b" * 64)
    assert one.lookup("k1") is None
    one.store("k1", a)
    assert two.lookup("k1") == a
    two.store("k1", b)          # replaced by the other instance: the first one reads the file again
    two.store("k2", a)
    assert one.lookup("k1") == b and one.lookup("k2") == a
    gone = BuildCache(tmp_path, lambda d: d != b)
    assert gone.lookup("k1") is None        # an entry whose image was removed is a miss


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


@pytest.mark.root
def test_a_cached_rebuild_writes_no_context_and_no_record(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "copied").mkdir(parents=True)
    (ctx / "unused").mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY copied/ /c/\nRUN cat /c/a.txt > /out\nCMD [\"sh\"]\n")
    (ctx / "copied/a.txt").write_text("one\n")
    (ctx / "unused/big.bin").write_bytes(os.urandom(1 << 20))
    first = b.docker("build", "-t", "cached-rebuild:1", str(ctx), env=CLASSIC).stdout.decode()
    assert "Using cache" not in first.split("COPY")[1]
    db = b.root / "images" / "db.json"
    before = db.stat().st_mtime_ns
    again = b.docker("build", "-t", "cached-rebuild:1", str(ctx), env=CLASSIC).stdout.decode()
    assert again.count("Using cache") == 3, again
    assert again.splitlines()[-2:] == first.splitlines()[-2:]      # the same image, the same tag lines
    assert db.stat().st_mtime_ns == before
    (ctx / "copied/a.txt").write_text("two\n")
    changed = b.docker("build", "-t", "cached-rebuild:1", str(ctx), env=CLASSIC).stdout.decode()
    assert changed.count("Using cache") == 0, changed       # the COPY missed, and every step after it
    out = b.docker("run", "--rm", "cached-rebuild:1", "cat", "/out", "/c/a.txt").stdout.decode()
    assert out == "two\ntwo\n"
    assert db.stat().st_mtime_ns != before      # a new image: the tag moved

