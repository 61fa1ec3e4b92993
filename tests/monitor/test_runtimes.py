"""The monitor driving runc and crun instead of the built-in runtime: the same stdio, log, exit and error
behaviour, and nothing left in their state either."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from typing import Any

import pytest

from berth.errors import RuntimeFailure
from tests.monitor.conftest import Monitors, read_all, streams

pytestmark = [pytest.mark.root, pytest.mark.interop]


@pytest.fixture(params=["runc", "crun"])
def runtime(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (apt install {name})")
    return name


def runtime_ids(runtime: str, root: str) -> list[str]:
    out = subprocess.run([runtime, "--root", root, "list", "--format", "json"], capture_output=True, text=True)
    return [c["id"] for c in json.loads(out.stdout or "[]") or []] if out.returncode == 0 else []


def test_pipes_log_and_exit_code_through_an_external_runtime(monitors: Monitors, runtime: str) -> None:
    c = monitors.spawn(["sh", "-c", "echo out; echo err >&2; exit 4"], runtime=runtime)
    attach = c.attach()
    c.start()
    assert streams(read_all(attach)) == (b"out\n", b"err\n")
    assert c.exited()["exit_code"] == 4
    assert [(e["log"], e["stream"]) for e in c.log_entries()] == [("out\n", "stdout"), ("err\n", "stderr")]
    assert runtime_ids(runtime, c.options.state_root) == []
    assert sorted(os.listdir(c.dir)) == sorted(["bundle", "exit.json", "started.json", "monitor.log",
                                                f"{c.options.container_id}-json.log"])


def test_a_tty_and_stdin_through_an_external_runtime(monitors: Monitors, runtime: str) -> None:
    c = monitors.spawn(["sh", "-c", "read x; stty size; echo got $x"], tty=True, stdin=True, runtime=runtime)
    attach = c.attach(stdin=True)
    c.start()
    assert c.call("resize", height=12, width=34) == {"ok": True}
    attach.sendall(b"abc\r")
    out = read_all(attach)
    assert b"12 34\r\n" in out and b"got abc\r\n" in out
    assert c.exited()["exit_code"] == 0


def test_a_kill_through_an_external_runtime_is_137(monitors: Monitors, runtime: str) -> None:
    c = monitors.spawn(["sleep", "100"], runtime=runtime)
    c.start()
    subprocess.run([runtime, "--root", c.options.state_root, "kill", c.options.container_id, "KILL"], check=True)
    assert c.exited()["exit_code"] == 137 and c.monitor_pid > 0
    assert runtime_ids(runtime, c.options.state_root) == []


def test_a_create_error_of_an_external_runtime_reaches_the_spawner(monitors: Monitors, runtime: str) -> None:
    options = monitors.options(["nope"], runtime=runtime)
    with pytest.raises(RuntimeFailure, match="nope.*not found in \\$PATH"):
        monitors.launch(options)
    assert runtime_ids(runtime, options.state_root) == []
    assert not os.path.lexists(options.socket)


def test_signals_do_not_leak_through_the_external_runtime(monitors: Monitors, runtime: str) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo $x"], stdin=True, runtime=runtime)
    c.start()
    os.kill(c.monitor_pid, signal.SIGHUP)
    attach = c.attach(stdin=True)
    attach.sendall(b"alive\n")
    assert streams(read_all(attach))[0] == b"alive\n"


def test_an_oom_kill_under_an_external_runtime_is_recorded(monitors: Monitors, runtime: str) -> None:
    def limit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["memory"] = {"limit": 8 << 20, "swap": 8 << 20}

    c = monitors.spawn(["sh", "-c", "head -c 100000000 /dev/zero | tail"], mutate=limit, runtime=runtime)
    c.start()
    done = c.exited()
    assert done["oom_killed"] is True and done["exit_code"] == 137
