"""--init: tini (Debian's static build) bound read-only at /sbin/docker-init as PID 1, the command its child:
the spec (pure), and through berthd with the real docker CLI: PID 1, signals forwarded (stop exits 143 at
once), orphans reaped, with --read-only too."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from berth.engine.containers import ContainerConfig
from berth.engine.specgen import INIT_BINARY, INIT_PATH, ResolvedUser, SpecPaths, build_spec
from berth.oci.digest import Digest
from tests.berthd import PrivateBerthd

_CONFIG = ContainerConfig(image="busybox", image_id=Digest.parse("sha256:" + "0" * 64), args=("sleep", "1"))
_PATHS = SpecPaths("/c/hostname", "/c/hosts", "/c/resolv.conf")


def test_the_spec_runs_the_command_under_the_init_bound_read_only() -> None:
    spec = build_spec(replace(_CONFIG, init=True), "c" * 64, ResolvedUser(0, 0), _PATHS)
    assert spec["process"]["args"] == [INIT_PATH, "--", "sleep", "1"]
    mount = spec["mounts"][-1]
    assert mount == {"destination": "/sbin/docker-init", "type": "bind", "source": INIT_BINARY,
                     "options": ["rbind", "ro", "rprivate"]}
    plain = build_spec(_CONFIG, "c" * 64, ResolvedUser(0, 0), _PATHS)
    assert plain["process"]["args"] == ["sleep", "1"]
    assert all(m["destination"] != INIT_PATH for m in plain["mounts"])


def test_the_init_binary_is_installed_and_static() -> None:
    data = Path(INIT_BINARY).read_bytes()
    assert data[:4] == b"\x7fELF"
    assert b"/lib64/ld-linux" not in data and b"/lib/ld-linux" not in data   # no interpreter: static


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


@pytest.mark.root
def test_pid_1_is_the_init_and_the_command_its_child(b: PrivateBerthd) -> None:
    out = b.docker("run", "--rm", "--init", "busybox", "ps", "-o", "pid,ppid,args").stdout.decode().splitlines()
    assert out[1].split() == ["1", "0", "/sbin/docker-init", "--", "ps", "-o", "pid,ppid,args"]
    assert out[2].split()[1:] == ["1", "ps", "-o", "pid,ppid,args"]
    proc = b.docker("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7                    # the child's exit status comes through
    assert b.docker("run", "--rm", "--init", "--read-only", "busybox", "echo", "ro").stdout == b"ro\n"


@pytest.mark.root
def test_stop_is_forwarded_to_the_command(b: PrivateBerthd) -> None:
    # Without an init, `sleep` as PID 1 ignores SIGTERM and stop waits for its SIGKILL; tini forwards it.
    b.docker("run", "-d", "--name", "initstop", "--init", "busybox", "sleep", "1000")
    started = time.monotonic()
    b.docker("stop", "-t", "10", "initstop")
    assert time.monotonic() - started < 3
    state = json.loads(b.docker("inspect", "initstop").stdout)[0]
    assert state["State"]["ExitCode"] == 143 and state["HostConfig"]["Init"] is True
    b.docker("rm", "initstop")


@pytest.mark.root
def test_orphans_are_reaped_by_the_init(b: PrivateBerthd) -> None:
    orphan = "(sleep 0.1 &); exec sleep 1000"    # the subshell's child is reparented to PID 1, then exits
    b.docker("run", "-d", "--name", "reaped", "--init", "busybox", "sh", "-c", orphan)
    b.docker("run", "-d", "--name", "zombie", "busybox", "sh", "-c", orphan)
    time.sleep(0.8)

    def states(name: str) -> list[str]:
        rows = b.docker("exec", name, "ps", "-o", "stat,comm").stdout.decode().splitlines()[1:]
        return [r.split()[0] for r in rows]
    assert "Z" not in states("reaped")
    assert "Z" in states("zombie")                # the same without --init leaves a zombie: the test can fail
    b.docker("rm", "-f", "reaped", "zombie")


@pytest.mark.root
@pytest.mark.slow
def test_berthd_init_gives_an_init_to_containers_that_do_not_choose() -> None:
    with PrivateBerthd(daemon_args=("--init",)) as d:
        status, body = d.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        pid1 = d.docker("run", "--rm", "busybox", "cat", "/proc/1/cmdline").stdout.split(b"\0")
        assert pid1[:2] == [b"/sbin/docker-init", b"--"]
        pid1 = d.docker("run", "--rm", "--init=false", "busybox", "cat", "/proc/1/cmdline").stdout.split(b"\0")
        assert pid1[0] == b"cat"
