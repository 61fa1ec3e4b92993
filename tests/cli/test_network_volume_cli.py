"""berth's network and volume commands next to the real docker CLI, on the same daemon: a private berthd, and a
private real dockerd (interop). Same stdout, stderr and exit code, ids normalised; the bad paths too."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests import peers
from tests.berthd import PrivateBerthd
from tests.cli.test_container_cli import norm
from tests.peers import Daemon, docker

seeded_daemon = peers.seeded_daemon

pytestmark = pytest.mark.root


def berth(host: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "BERTH_NO_AUTOSTART": "1"}
    return subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", host, *args], input=input,
                          capture_output=True, env=env, timeout=120)


def same(host: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    d = docker(host, *args, input=input, check=False)
    o = berth(host, *args, input=input)
    assert (o.returncode, norm(o.stdout, True), norm(o.stderr, True)) == \
        (d.returncode, norm(d.stdout), norm(d.stderr)), args
    return o


def ok(host: str, *args: str, input: bytes | None = None) -> bytes:
    o = berth(host, *args, input=input)
    assert o.returncode == 0, (args, o.stderr)
    return o.stdout


@pytest.fixture(scope="module")
def bd() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def exercise_volumes(host: str, image: str) -> None:
    assert ok(host, "volume", "create", "--label", "k=v", "vol-a") == b"vol-a\n"
    assert ok(host, "volume", "create", "--name", "vol-b") == b"vol-b\n"
    anonymous = ok(host, "volume", "create").strip()
    assert len(anonymous) == 64
    same(host, "volume", "ls")
    same(host, "volume", "ls", "-q")
    same(host, "volume", "ls", "--filter", "label=k=v", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    same(host, "volume", "ls", "--format", "json")
    same(host, "volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}", "vol-a", "vol-b")
    same(host, "volume", "inspect", "vol-a", "nosuchvol")
    same(host, "inspect", "--type", "volume", "-f", "{{.Name}}", "vol-a")
    same(host, "volume", "create", "--name", "x", "y")
    same(host, "volume", "create", "bad/name")
    ok(host, "run", "--rm", "-v", "vol-a:/data", image, "sh", "-c", "echo kept > /data/f")
    assert ok(host, "run", "--rm", "-v", "vol-a:/data", image, "cat", "/data/f") == b"kept\n"
    cid = ok(host, "create", "-v", "vol-b:/data", image, "true").strip().decode()
    o = berth(host, "volume", "rm", "vol-b")
    d = docker(host, "volume", "rm", "vol-b", check=False)
    assert o.returncode == d.returncode == 1 and b"in use" in o.stderr
    ok(host, "rm", cid)
    assert ok(host, "volume", "rm", "vol-a", "vol-b") == b"vol-a\nvol-b\n"
    same(host, "volume", "rm", "vol-a")
    same(host, "volume", "rm", "-f", "vol-a")
    if b"1.41" in ok(host, "version", "-f", "{{.Server.APIVersion}}"):
        same(host, "volume", "prune", "-a", "-f")   # refused by both CLIs: the daemon is too old for --all
        pruned = ok(host, "volume", "prune", "-f")   # and a 1.41 daemon prunes named volumes anyway
    else:
        pruned = ok(host, "volume", "prune", "-a", "-f")
    assert pruned.startswith(b"Deleted Volumes:\n" + anonymous + b"\n\nTotal reclaimed space: ")
    assert ok(host, "volume", "ls", "-q") == b""
    same(host, "volume", "prune", "-f")


def exercise_networks(host: str, image: str) -> None:
    net_id = ok(host, "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1", "--label", "t=1",
                "net-a").strip()
    assert len(net_id) == 64
    same(host, "network", "ls")
    same(host, "network", "ls", "-q", "--no-trunc")
    same(host, "network", "ls", "--filter", "name=net-a", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    same(host, "network", "inspect", "-f", "{{.Name}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} "
         "{{.Gateway}}{{end}}", "net-a")
    same(host, "network", "inspect", "nosuchnet")
    same(host, "inspect", "--type", "network", "-f", "{{.Name}}", "net-a")
    same(host, "network", "create", "--subnet", "10.78.0.0/24", "--ip-range", "10.79.0.0/24", "bad-range")
    same(host, "network", "create", "--gateway", "10.78.0.1", "no-subnet")
    same(host, "network", "create", "--subnet", "10.78.0.0/24", "--gateway", "10.99.0.1", "bad-gw")
    same(host, "network", "rm", "nosuchnet")
    cid = ok(host, "create", "--name", "netc", image, "true").strip().decode()
    assert ok(host, "network", "connect", "--alias", "svc", "--ip", "10.77.0.9", "net-a", "netc") == b""
    same(host, "inspect", "-f", '{{(index .NetworkSettings.Networks "net-a").IPAMConfig.IPv4Address}} '
         '{{(index .NetworkSettings.Networks "net-a").Aliases}}', "netc")
    assert ok(host, "network", "disconnect", "net-a", "netc") == b""
    same(host, "network", "disconnect", "net-a", "netc")
    ok(host, "rm", cid)
    assert ok(host, "network", "rm", "net-a") == b"net-a\n"
    ok(host, "network", "create", "net-unused")
    o = ok(host, "network", "prune", "-f")
    assert o == b"Deleted Networks:\nnet-unused\n\n"
    same(host, "network", "prune", "-f")


def test_volumes_through_berthd(bd: PrivateBerthd) -> None:
    exercise_volumes(bd.host, "busybox")


def test_networks_through_berthd(bd: PrivateBerthd) -> None:
    exercise_networks(bd.host, "busybox")


@pytest.mark.interop
@pytest.mark.slow
def test_volumes_against_a_real_dockerd(seeded_daemon: Daemon) -> None:
    exercise_volumes(seeded_daemon.host, seeded_daemon.images.busybox)


@pytest.mark.interop
@pytest.mark.slow
def test_networks_against_a_real_dockerd(seeded_daemon: Daemon) -> None:
    exercise_networks(seeded_daemon.host, seeded_daemon.images.busybox)
