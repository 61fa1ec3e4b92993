"""docker ps -s (SizeRw, SizeRootFs) and the filters before, since, network, volume, is-task, against berthd."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.berthd import PrivateBerthd
from tests.containers.extra_daemon import b, run_d  # noqa: F401

pytestmark = pytest.mark.root


def _list(daemon: PrivateBerthd, query: str) -> list[dict[str, Any]]:
    status, body = daemon.api("GET", "/containers/json?" + query)
    assert status == 200, body
    out: list[dict[str, Any]] = json.loads(body)
    return out


def _names(daemon: PrivateBerthd, *args: str) -> list[str]:
    return daemon.docker("ps", "-a", "--format", "{{.Names}}", *args).stdout.decode().split()


def test_sizes_count_the_containers_own_changes(b: PrivateBerthd) -> None:  # noqa: F811
    b.docker("run", "--name", "sized", "busybox", "sh", "-c", "head -c 1000 /dev/zero > /kilo; ln /kilo /same")
    b.docker("create", "--name", "clean", "busybox", "true")
    try:
        image_size = json.loads(b.api("GET", "/images/json")[1])[0]["Size"]
        items = {i["Names"][0]: i for i in _list(b, "all=1&size=1")}
        assert items["/sized"]["SizeRw"] == 1000             # a hard link counts once
        assert items["/sized"]["SizeRootFs"] == image_size + 1000
        assert "SizeRw" not in items["/clean"] and items["/clean"]["SizeRootFs"] == image_size
        assert all("SizeRw" not in i and "SizeRootFs" not in i for i in _list(b, "all=1&size=0"))
        table = b.docker("ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}").stdout.decode().splitlines()
        assert any(t.startswith("sized 1kB (virtual ") and t.endswith("MB)") for t in table), table
    finally:
        b.docker("rm", "-f", "sized", "clean")


def test_before_and_since_follow_creation_order(b: PrivateBerthd) -> None:  # noqa: F811
    for name in ("first", "second", "third"):
        b.docker("create", "--name", name, "busybox", "true")
        time.sleep(0.01)
    try:
        assert _names(b, "--filter", "before=third") == ["second", "first"]
        assert _names(b, "--filter", "since=first") == ["third", "second"]
        assert _names(b, "--filter", "since=first", "--filter", "before=third") == ["second"]
        cid = b.docker("inspect", "--format", "{{.Id}}", "second").stdout.decode().strip()
        assert _names(b, "--filter", f"before={cid[:12]}") == ["first"]
        assert b.docker("ps", "-q", "--filter", "before=third").stdout == b""     # not running: only with -a
        proc = b.docker("ps", "-a", "--filter", "before=nosuch", check=False)
        assert proc.returncode != 0 and b"No such container: nosuch" in proc.stderr
    finally:
        b.docker("rm", "-f", "first", "second", "third")


def test_volume_and_is_task_filters(b: PrivateBerthd, tmp_path: Any) -> None:  # noqa: F811
    b.docker("create", "--name", "withvol", "-v", "psvol:/data", "busybox", "true")
    b.docker("create", "--name", "withbind", "-v", f"{tmp_path}:/host", "busybox", "true")
    b.docker("create", "--name", "plain", "busybox", "true")
    try:
        assert _names(b, "--filter", "volume=psvol") == ["withvol"]
        assert _names(b, "--filter", "volume=/data") == ["withvol"]
        assert _names(b, "--filter", "volume=/host") == ["withbind"]
        assert _names(b, "--filter", "volume=nothere") == []
        assert _names(b, "--filter", "is-task=true") == []
        assert set(_names(b, "--filter", "is-task=false")) == {"withvol", "withbind", "plain"}
        status, body = b.api("GET", '/containers/json?all=1&filters={"is-task":["maybe"]}')
        assert status == 400
        status, body = b.api("GET", '/containers/json?all=1&filters={"nonsense":["x"]}')
        assert status == 400 and b"invalid filter 'nonsense'" in body
    finally:
        b.docker("rm", "-f", "withvol", "withbind", "plain")
        b.docker("volume", "rm", "psvol", check=False)


def test_network_filter_by_name_and_id_prefix(b: PrivateBerthd) -> None:  # noqa: F811
    made = b.docker("network", "create", "psnet", check=False)
    if made.returncode != 0:
        pytest.skip(f"user-defined networks are not available: {made.stderr.decode().strip()}")
    net_id = made.stdout.decode().strip()
    try:
        b.docker("create", "--name", "onnet", "--network", "psnet", "busybox", "true")
        b.docker("create", "--name", "onbridge", "busybox", "true")
        assert _names(b, "--filter", "network=psnet") == ["onnet"]
        assert _names(b, "--filter", f"network={net_id[:10]}") == ["onnet"]
        assert "onnet" not in _names(b, "--filter", "network=bridge")
        assert _names(b, "--filter", "network=nonet") == []
    finally:
        b.docker("rm", "-f", "onnet", "onbridge", check=False)
        b.docker("network", "rm", "psnet", check=False)


def test_running_containers_filtered_and_sized_through_docker_py(b: PrivateBerthd) -> None:  # noqa: F811
    import docker
    run_d(b, "pyrun", "busybox", "sh", "-c", "echo -n 12345 > /five; sleep 1000")
    try:
        for _ in range(50):
            if b.docker("exec", "pyrun", "test", "-e", "/five", check=False).returncode == 0:
                break
        api = docker.APIClient(base_url=b.host, version="1.44")
        found = api.containers(size=True, filters={"name": "pyrun"})
        assert [c["SizeRw"] for c in found] == [5]
    finally:
        b.docker("rm", "-f", "pyrun")
