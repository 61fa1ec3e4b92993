"""--pid, --ipc and --uts through berthd with the docker CLI: the host's namespaces, another container's, none,
and the bad inputs (berth.engine.nsmodes)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


@pytest.fixture(autouse=True)
def clean(b: PrivateBerthd) -> Iterator[None]:
    yield
    ids = b.docker("ps", "-aq").stdout.decode().split()
    if ids:
        b.docker("rm", "-f", *ids)


def run(b: PrivateBerthd, *args: str) -> str:
    return b.docker("run", "--rm", *args).stdout.decode()


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_host_modes_share_the_hosts_namespaces(b: PrivateBerthd) -> None:
    me = os.getpid()
    out = run(b, "--pid", "host", "--ipc", "host", "--uts", "host", "busybox:latest", "sh", "-c",
              "for n in pid ipc uts; do readlink /proc/self/ns/$n; done; hostname; "
              f"test -d /proc/{me} && echo sees-the-host")
    assert out.splitlines() == [ns(me, "pid"), ns(me, "ipc"), ns(me, "uts"), socket.gethostname(), "sees-the-host"]
    private = run(b, "busybox:latest", "sh", "-c", "for n in pid ipc uts; do readlink /proc/self/ns/$n; done")
    assert not set(private.splitlines()) & {ns(me, "pid"), ns(me, "ipc"), ns(me, "uts")}


def test_container_modes_join_a_running_containers_pid_and_ipc_namespaces(b: PrivateBerthd) -> None:
    b.docker("run", "-d", "--name", "target", "--ipc", "shareable", "busybox:latest", "sleep", "300")
    pid = json.loads(b.docker("inspect", "target").stdout)[0]["State"]["Pid"]
    out = run(b, "--pid", "container:target", "--ipc", "container:target", "busybox:latest", "sh", "-c",
              "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /proc/1/cmdline; echo")
    assert out.splitlines() == [ns(pid, "pid"), ns(pid, "ipc"), "sleep\x00300\x00"]
    joiner = b.docker("create", "--pid", "container:target", "busybox:latest", "true").stdout.decode().strip()
    assert json.loads(b.docker("inspect", joiner).stdout)[0]["HostConfig"]["PidMode"] == "container:target"
    assert json.loads(b.docker("inspect", "target").stdout)[0]["HostConfig"]["IpcMode"] == "shareable"


def test_ipc_none_has_no_dev_shm_and_the_default_is_private(b: PrivateBerthd) -> None:
    assert run(b, "--ipc", "none", "busybox:latest", "sh", "-c", "test -e /dev/shm || echo no-shm") == "no-shm\n"
    cid = b.docker("create", "busybox:latest", "true").stdout.decode().strip()
    host_config = json.loads(b.docker("inspect", cid).stdout)[0]["HostConfig"]
    assert (host_config["IpcMode"], host_config["PidMode"], host_config["UTSMode"]) == ("private", "", "")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("IpcMode", "bogus", "invalid IPC mode: bogus"),
    ("PidMode", "sideways", "invalid PID mode: sideways"),
    ("PidMode", "container:", "invalid PID mode: container:"),
    ("UTSMode", "container:x", "invalid UTS mode: container:x"),
    ("IpcMode", 7, "invalid IpcMode: expected a string"),
])
def test_bad_modes_are_refused_at_create(b: PrivateBerthd, field: str, value: object, message: str) -> None:
    """Through the API: the docker CLI refuses most of them itself."""
    body = {"Image": "busybox:latest", "Cmd": ["true"], "HostConfig": {field: value}}
    status, answer = b.api("POST", "/containers/create", json.dumps(body).encode())
    assert (status, json.loads(answer)["message"]) == (400, message)
    assert b.docker("ps", "-aq").stdout == b""


def test_joining_a_container_that_does_not_run_fails_the_start_and_leaves_it_created(b: PrivateBerthd) -> None:
    b.docker("create", "--name", "idle", "busybox:latest", "sleep", "300")
    b.docker("create", "--name", "joiner", "--pid", "container:idle", "busybox:latest", "true")
    failed = b.docker("start", "joiner", check=False)
    assert failed.returncode != 0 and "cannot join PID of a non running container: idle" in failed.stderr.decode()
    state = json.loads(b.docker("inspect", "joiner").stdout)[0]["State"]
    assert state["Status"] == "created" and not state["Running"]
    b.docker("start", "idle")
    b.docker("start", "joiner")
    assert b.docker("wait", "joiner").stdout.decode().strip() == "0"
    leftover = [p for p in Path(b.dir).glob("exec/netns/*")]
    assert len(leftover) == 1       # only idle's: the failed start undid its network namespace
