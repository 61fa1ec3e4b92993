"""A module-scoped private berthd with the offline busybox image, for the stats/cp/update/ps/df tests.

Import the fixture: `from tests.containers.extra_daemon import b  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.berthd import PrivateBerthd
from tests.peers import _mounts_under


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)
        assert _mounts_under(str(daemon.root / "containers")) == []


def client(b: PrivateBerthd) -> docker.APIClient:
    return docker.APIClient(base_url=b.host, version="1.44", timeout=60)


def run_d(b: PrivateBerthd, name: str, *args: str) -> str:
    """docker run -d --name name args...; the container's id."""
    return b.docker("run", "-d", "--name", name, *args).stdout.decode().strip()
