"""The monitor fork server: monitors it forks are as detached as exec'd ones, it gives way to newer code, and a
missing or dead server only costs the fast path."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.monitor.spawn import start_zygote, stop_zygote
from tests.monitor.conftest import Monitors, alive, read_all, streams, wait_gone

pytestmark = pytest.mark.root


@pytest.fixture
def own_zygote(monitors: Monitors) -> Iterator[str]:
    """A fork server of the test's own, which it may kill."""
    directory = tempfile.mkdtemp(prefix="bz", dir="/tmp")
    path = os.path.join(directory, "z.sock")
    monitors.zygote = path
    yield path
    for pid in zygote_pids(path):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def zygote_pids(path: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if path.encode() in cmdline and alive(int(name)) and comm(int(name)) != "berth-monitor":
                found.append(int(name))
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def test_spawn_starts_a_zygote_whose_monitors_share_none_of_its_fds(monitors: Monitors, own_zygote: str) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo $x"], stdin=True)
    [server] = zygote_pids(own_zygote)
    assert os.stat(own_zygote).st_mode & 0o777 == 0o600
    assert not socket_inodes(server) & socket_inodes(c.monitor_pid)
    with open(f"/proc/{c.monitor_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) != server  # not the server's child
    assert os.getsid(c.monitor_pid) not in (os.getsid(0), os.getsid(server))  # a session of its own
    assert comm(c.monitor_pid) == "berth-monitor"
    second = monitors.spawn(["true"])
    assert zygote_pids(own_zygote) == [server]  # the same server forked it
    second.start()
    assert second.exited()["exit_code"] == 0
    attach = c.attach(stdin=True)
    c.start()
    attach.sendall(b"hi\n")
    assert streams(read_all(attach))[0] == b"hi\n"


def test_monitors_outlive_a_killed_zygote_and_the_next_spawn_starts_another(monitors: Monitors,
                                                                           own_zygote: str) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo $x"], stdin=True)
    [server] = zygote_pids(own_zygote)
    os.kill(server, signal.SIGKILL)
    assert wait_gone(server)
    assert alive(c.monitor_pid)
    attach = c.attach(stdin=True)
    c.start()
    attach.sendall(b"still\n")
    assert streams(read_all(attach))[0] == b"still\n"
    again = monitors.spawn(["true"])  # the socket file is stale now: a new server replaces it
    [replacement] = zygote_pids(own_zygote)
    assert replacement != server
    again.start()
    assert again.exited()["exit_code"] == 0


def test_a_zygote_with_other_code_steps_aside(monitors: Monitors, own_zygote: str) -> None:
    start_zygote(own_zygote)
    [old] = zygote_pids(own_zygote)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(own_zygote)
        socket.send_fds(sock, [b'{"argv": [], "stamp": "older code"}\n'], [])
        assert read_all(sock) == b"stale\n"
    assert wait_gone(old)
    c = monitors.spawn(["true"])
    assert zygote_pids(own_zygote) not in ([], [old])
    c.start()
    assert c.exited()["exit_code"] == 0


def test_a_zygote_refuses_a_request_without_its_fds_and_keeps_serving(monitors: Monitors, own_zygote: str) -> None:
    from berth.monitor.zygote import code_stamp

    start_zygote(own_zygote)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(own_zygote)
        sock.sendall(b'{"argv": ["--id", "x"], "stamp": "%s"}\n' % code_stamp().encode())
        assert read_all(sock).startswith(b"error")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(own_zygote)
        sock.sendall(b"garbage\n")
        assert read_all(sock) == b""
    c = monitors.spawn(["true"])
    c.start()
    assert c.exited()["exit_code"] == 0
    assert stop_zygote(own_zygote)
    assert not os.path.exists(own_zygote)


def test_an_unusable_zygote_path_falls_back_to_exec(monitors: Monitors) -> None:
    monitors.zygote = "/tmp/" + "z" * 120 + ".sock"  # longer than a unix socket path may be
    c = monitors.spawn(["sh", "-c", "echo fine"])
    attach = c.attach()
    c.start()
    assert streams(read_all(attach))[0] == b"fine\n"
    assert not os.path.exists(monitors.zygote)
