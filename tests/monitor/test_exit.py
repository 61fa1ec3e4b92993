"""How containers end: exit codes, kills, OOM kills, the exit and started files, wait and status, and the
monitor surviving its spawner."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from berth.errors import Conflict, Unavailable
from berth.monitor import client
from tests.monitor.conftest import Monitors, alive, read_all, streams, wait_gone

pytestmark = pytest.mark.root

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def test_exit_json_records_the_exit_code_and_times(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "exit 3"])
    c.start()
    started = json.loads((c.dir / "started.json").read_text())
    assert started["pid"] > 0 and TIME.match(started["started_at"])
    done = c.exited()
    assert done["exit_code"] == 3 and done["oom_killed"] is False
    assert TIME.match(done["finished_at"]) and done["started_at"] == started["started_at"]
    assert done["finished_at"] >= done["started_at"]
    assert wait_gone(c.monitor_pid)
    assert not os.path.exists(c.options.socket)
    assert not [p for p in c.dir.iterdir() if p.name.startswith(".")]  # no temp files of atomic writes


def test_a_sigkill_is_recorded_as_137(monitors: Monitors) -> None:
    c = monitors.spawn(["sleep", "100"])
    c.start()
    waiter = client.connect(c.options.socket)
    waiter.sendall(b'{"op":"wait"}\n')
    assert c.call("status")["status"] == "running"
    c.kill(signal.SIGKILL)
    answer = json.loads(read_all(waiter))
    assert answer["exit_code"] == 137 and answer["oom_killed"] is False
    assert c.exited()["exit_code"] == 137


def test_a_death_by_sigterm_is_recorded_as_143(monitors: Monitors) -> None:
    def host_pid_namespace(cfg: dict[str, Any]) -> None:
        # in its own pid namespace the init ignores SIGTERM unless it installs a handler (the kernel shields pid 1)
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]

    c = monitors.spawn(["sleep", "100"], mutate=host_pid_namespace)
    c.start()
    c.kill(signal.SIGTERM)
    assert c.exited()["exit_code"] == 143


def test_an_oom_kill_is_recorded(monitors: Monitors) -> None:
    def limit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["memory"] = {"limit": 8 << 20, "swap": 8 << 20}

    # tail keeps the whole last "line" of /dev/zero in memory: it grows past 8 MiB and is OOM-killed
    c = monitors.spawn(["sh", "-c", "head -c 100000000 /dev/zero | tail"], mutate=limit)
    c.start()
    done = c.exited()
    assert done["oom_killed"] is True
    assert done["exit_code"] == 137


def test_a_container_killed_before_start_is_recorded_and_cleaned_up(monitors: Monitors) -> None:
    c = monitors.spawn(["echo", "never"])
    c.kill(signal.SIGKILL)
    done = c.exited()
    assert done["exit_code"] == 137 and done["started_at"] == "0001-01-01T00:00:00Z"
    assert not (c.dir / "started.json").exists()
    assert c.log_file.read_text() == ""


def test_wait_and_status_after_the_exit_are_answered_from_the_record(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read x; exit 7"], stdin=True)
    c.start()
    waiters = [client.connect(c.options.socket) for _ in range(3)]
    for w in waiters:
        w.sendall(b'{"op":"wait"}\n')
    time.sleep(0.1)
    attach = c.attach(stdin=True)
    attach.sendall(b"\n")
    read_all(attach)
    for w in waiters:
        assert json.loads(read_all(w))["exit_code"] == 7
    assert c.exited()["exit_code"] == 7
    assert wait_gone(c.monitor_pid)
    with pytest.raises(Unavailable):
        c.call("wait")


def test_start_twice_is_refused_and_the_first_start_stands(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo once"], stdin=True)
    attach = c.attach(stdin=True)
    c.start()
    with pytest.raises(Conflict, match="is running: only a created one can start"):
        c.call("start")
    attach.sendall(b"\n")
    assert streams(read_all(attach))[0] == b"once\n"


def test_the_monitor_survives_the_death_of_its_spawner(monitors: Monitors) -> None:
    options = monitors.options(["sh", "-c", "read x; echo after $x"], stdin=True)
    container = monitors.made[-1]
    marker = monitors.base / "engine-state.lock"
    code = ("import sys, os, pickle, socket; from berth.monitor import spawn; "
            "held = [open(sys.argv[3], 'w'), socket.socket(socket.AF_INET, socket.SOCK_STREAM)]; "
            "o = pickle.loads(bytes.fromhex(sys.argv[1])); print(spawn(o, zygote=sys.argv[2] or None), flush=True); "
            "print(os.getsid(0), flush=True); import time; time.sleep(100)")
    import pickle

    spawner = subprocess.Popen([sys.executable, "-c", code, pickle.dumps(options).hex(),
                                monitors.zygote or "", str(marker)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert spawner.stdout is not None
        container.monitor_pid = int(spawner.stdout.readline())
        spawner_sid = int(spawner.stdout.readline())
    finally:
        spawner.kill()  # kill -9 the "engine"
        spawner.wait()
    assert alive(container.monitor_pid)
    assert os.getsid(container.monitor_pid) not in (spawner_sid, os.getsid(0))
    with open(f"/proc/{container.monitor_pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) not in (spawner.pid, os.getpid())  # not our child
    fds = os.listdir(f"/proc/{container.monitor_pid}/fd")
    targets = {int(fd): os.readlink(f"/proc/{container.monitor_pid}/fd/{fd}") for fd in fds}
    assert targets[0] == targets[1] == "/dev/null"
    assert targets[2] == str(container.dir / "monitor.log")
    allowed = {str(container.log_file), str(container.dir / "monitor.log"), "/dev/null"}
    assert [t for t in targets.values() if t not in allowed and not t.startswith(("pipe:", "socket:"))] == []
    assert str(marker) not in targets.values()
    # a socket of the spawner would be a TCP one here: the monitor has only unix sockets (/proc/net/unix)
    unix_inodes = {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    assert all(t[8:-1] in unix_inodes for t in targets.values() if t.startswith("socket:"))
    attach = container.attach(stdin=True)
    container.start()
    attach.sendall(b"ok\n")
    assert streams(read_all(attach))[0] == b"after ok\n"
    assert container.exited()["exit_code"] == 0
    assert [e["log"] for e in container.log_entries()] == ["after ok\n"]


def test_sigint_and_sighup_do_not_stop_the_monitor_or_reach_the_container(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo still $x"], stdin=True)
    c.start()
    os.kill(c.monitor_pid, signal.SIGINT)
    os.kill(c.monitor_pid, signal.SIGHUP)
    time.sleep(0.2)
    assert alive(c.monitor_pid)
    attach = c.attach(stdin=True)
    attach.sendall(b"here\n")
    assert streams(read_all(attach))[0] == b"still here\n"
    with open(f"/proc/{c.monitor_pid}/status") as f:
        ignored = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGHUP - 1))  # a handler, not SIG_IGN, which exec would pass on


def test_monitor_memory_stays_under_containerd_shims(monitors: Monitors) -> None:
    for tty in (False, True):
        c = monitors.spawn(["sh", "-c", "read x"], stdin=True, tty=tty)
        c.start()
        for _ in range(20):  # a little traffic first
            c.call("status")
        with open(f"/proc/{c.monitor_pid}/status") as f:
            rss_kib = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
        print(f"monitor RSS ({'tty' if tty else 'pipes'}): {rss_kib / 1024:.1f} MiB")
        assert rss_kib <= 12.9 * 1024, f"monitor RSS {rss_kib} KiB is over containerd-shim's 12.9 MiB"
        attach = c.attach(stdin=True)
        attach.sendall(b"\n" if not tty else b"\r")
        read_all(attach)
        c.exited()
