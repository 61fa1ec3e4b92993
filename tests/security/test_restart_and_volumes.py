"""Nothing lost across a daemon restart, and no volume removed from under a container (security-cases.md cases
24 and 28), through a private berthd and the real docker CLI:

* berthd stopped gracefully (SIGTERM, as `systemctl restart` does) and started again: a running container keeps
  its PID and keeps logging, its port published on 127.0.0.1 answers while berthd is down and after, a `--rm`
  container that exited meanwhile is removed, one without --rm shows its exit code;
* a volume used by a running or a stopped container is refused by `volume rm` (with -f too) and by prune, and
  its data is intact afterwards.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root
LOOP = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"
HTTPD = "mkdir -p /www && echo alive > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def state(b: PrivateBerthd, name: str) -> dict[str, object]:
    return dict(json.loads(b.docker("inspect", name).stdout)[0]["State"])


@pytest.mark.slow
def test_a_graceful_daemon_restart_keeps_containers_ports_and_logs(b: PrivateBerthd) -> None:
    port = free_port()
    b.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c", LOOP)
    b.docker("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
    b.docker("run", "-d", "--name", "quitter", "busybox", "sh", "-c", "sleep 1; exit 5")
    b.docker("run", "-d", "--rm", "--name", "vanisher", "busybox", "sh", "-c", "sleep 1")
    assert get(f"http://127.0.0.1:{port}/") == "alive\n"
    pid = state(b, "ticker")["Pid"]
    b.stop()                                            # SIGTERM: a clean shutdown
    assert b.proc is not None and b.proc.returncode == 0, b.log_tail()
    try:
        assert get(f"http://127.0.0.1:{port}/") == "alive\n"     # answered by the kernel's NAT alone
        time.sleep(1.5)                                          # quitter and vanisher exit meanwhile
    finally:
        b.start()
    ticker = state(b, "ticker")
    assert ticker["Running"] is True and ticker["Pid"] == pid
    lines = b.docker("logs", "ticker").stdout.decode().split("\n")
    numbers = [int(line.split()[1]) for line in lines if line.startswith("tick ")]
    assert numbers == list(range(1, len(numbers) + 1)), "log lines were lost or repeated across the restart"
    assert len(numbers) >= 25                                   # it kept logging while berthd was down
    assert get(f"http://127.0.0.1:{port}/") == "alive\n"
    quitter = state(b, "quitter")
    assert quitter["Status"] == "exited" and quitter["ExitCode"] == 5
    assert b.docker("inspect", "vanisher", check=False).returncode != 0
    b.docker("rm", "-f", "ticker", "web", "quitter")


def test_a_volume_in_use_by_a_running_or_stopped_container_is_never_removed(b: PrivateBerthd) -> None:
    b.docker("run", "-d", "--name", "user1", "-v", "precious:/d", "busybox", "sh", "-c",
             "echo data > /d/f; sleep 60")
    b.docker("create", "--name", "user2", "-v", "kept:/d", "busybox", "true")
    time.sleep(0.3)
    for vol in ("precious", "kept"):
        for args in (["volume", "rm", vol], ["volume", "rm", "-f", vol]):
            proc = b.docker(*args, check=False)
            assert proc.returncode == 1 and b"volume is in use" in proc.stderr, proc
    pruned = b.docker("volume", "prune", "-f").stdout.decode()
    assert "precious" not in pruned and "kept" not in pruned
    names = b.docker("volume", "ls", "-q").stdout.decode().split()
    assert {"precious", "kept"} <= set(names)
    b.docker("stop", "-t", "1", "user1")
    assert b.docker("volume", "rm", "precious", check=False).returncode == 1     # a stopped user still holds it
    assert b.docker("run", "--rm", "-v", "precious:/x", "busybox", "cat", "/x/f").stdout == b"data\n"
    b.docker("rm", "user1", "user2")
    b.docker("volume", "rm", "precious", "kept")
    assert not {"precious", "kept"} & set(b.docker("volume", "ls", "-q").stdout.decode().split())
