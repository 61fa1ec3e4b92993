"""`docker system prune` and `docker builder prune` against berthd: stopped containers, unused networks and dangling
images go; the build-cache step answers (berth has only the classic builder's intermediate images, which build
prune leaves alone, as dockerd does)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root]


@pytest.fixture
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        assert daemon.api("POST", "/berth/images/bootstrap?base=busybox")[0] == 200
        yield daemon


def test_system_prune_removes_stopped_containers_and_unused_networks(b: PrivateBerthd) -> None:
    stopped = b.docker("create", "busybox", "true").stdout.decode().strip()
    running = b.docker("run", "-d", "busybox", "sleep", "30").stdout.decode().strip()
    b.docker("network", "create", "prunable")
    try:
        out = b.docker("system", "prune", "-f").stdout.decode()
        assert stopped in out and running not in out
        assert "Deleted Networks:\nprunable" in out and out.rstrip().endswith("Total reclaimed space: 0B")
        assert b.docker("ps", "-aq", "--no-trunc").stdout.decode().split() == [running]
        assert b"prunable" not in b.docker("network", "ls").stdout
    finally:
        b.docker("rm", "-f", running)


def test_builder_prune_answers_with_nothing_to_reclaim(b: PrivateBerthd) -> None:
    status, body = b.api("POST", "/build/prune")
    assert (status, json.loads(body)) == (200, {"CachesDeleted": None, "SpaceReclaimed": 0})
    assert b.docker("builder", "prune", "-f").stdout.decode().strip() == "Total reclaimed space: 0B"
