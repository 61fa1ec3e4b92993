"""Bad input: create failures reach the spawner with the runtime's message and leave nothing; malformed requests
are answered with an error and do not disturb the container."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.runtime.cgroups import open_cgroup
from tests.monitor.conftest import Monitors, processes_mentioning, read_all, streams

pytestmark = pytest.mark.root


def assert_nothing_left(monitors: Monitors) -> None:
    options = monitors.made[-1].options
    assert not os.path.lexists(options.socket)
    assert not (Path(options.state_root) / options.container_id).exists()
    assert not [d for d in open_cgroup(None, options.container_id).dirs() if os.path.exists(d)]
    assert processes_mentioning(options.container_id) == []
    assert not (Path(options.container_dir) / "exit.json").exists()


def test_a_missing_executable_reaches_the_spawner_with_the_runtimes_message(monitors: Monitors) -> None:
    options = monitors.options(["nope"])
    with pytest.raises(NotFound, match=r'exec: "nope": executable file not found in \$PATH'):
        monitors.launch(options)
    assert_nothing_left(monitors)


def test_a_bundle_without_config_is_reported(monitors: Monitors) -> None:
    options = monitors.options(["true"])
    os.unlink(os.path.join(options.bundle, "config.json"))
    with pytest.raises(NotFound, match="config.json does not exist"):
        monitors.launch(options)
    assert_nothing_left(monitors)


def test_a_tty_option_without_a_terminal_in_the_config_is_reported(monitors: Monitors) -> None:
    options = monitors.options(["true"])
    bundle_cfg = Path(options.bundle) / "config.json"
    options = type(options)(**{**{n: getattr(options, n) for n in options.__record_fields__}, "tty": True})
    assert json.loads(bundle_cfg.read_text())["process"]["terminal"] is False
    with pytest.raises(InvalidArgument, match="process.terminal"):
        monitors.launch(options)
    assert_nothing_left(monitors)


def test_a_terminal_in_the_config_without_the_tty_option_is_reported(monitors: Monitors) -> None:
    def terminal(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True

    options = monitors.options(["true"], mutate=terminal)
    with pytest.raises(InvalidArgument, match="console socket"):
        monitors.launch(options)
    assert_nothing_left(monitors)


def test_an_unknown_runtime_binary_is_reported(monitors: Monitors) -> None:
    options = monitors.options(["true"])
    options = type(options)(**{**{n: getattr(options, n) for n in options.__record_fields__},
                               "runtime": "/nonexistent/runc"})
    with pytest.raises(NotFound, match="/nonexistent/runc not found"):
        monitors.launch(options)
    assert_nothing_left(monitors)


def test_a_socket_served_by_a_live_monitor_is_not_taken_over(monitors: Monitors) -> None:
    first = monitors.spawn(["sh", "-c", "read x"], stdin=True)
    options = monitors.options(["true"])
    options = type(options)(**{**{n: getattr(options, n) for n in options.__record_fields__},
                               "socket": first.options.socket})
    with pytest.raises(Conflict, match="already listens"):
        monitors.launch(options)
    assert first.call("status")["status"] == "created"


def test_a_stale_socket_and_stale_exit_file_are_replaced(monitors: Monitors) -> None:
    options = monitors.options(["sh", "-c", "echo fresh"])
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(options.socket)
    stale.close()  # a socket file nobody listens on: its monitor died
    Path(options.container_dir, "exit.json").write_text('{"exit_code": 99}')
    c = monitors.made[-1]
    c.monitor_pid = monitors.launch(options)
    assert not c.exit_file.exists()
    attach = c.attach()
    c.start()
    assert streams(read_all(attach))[0] == b"fresh\n"
    assert c.exited()["exit_code"] == 0


@pytest.mark.parametrize(("line", "message"), [
    (b"not json\n", "not a JSON line"),
    (b"[1, 2]\n", "must be a JSON object"),
    (b'{"op": "explode"}\n', "unknown op"),
    (b'{"op": "attach", "stdin": "yes"}\n', "stdin must be true or false"),
    (b'{"op": "resize", "height": 0, "width": 80}\n', "height must be an integer from 1 to 65535"),
    (b'{"op": "resize", "height": 24, "width": true}\n', "width must be an integer"),
    (b'{"op": "resize", "height": 24, "width": 80}\n', "has no tty to resize"),
    (b"\xff\xfe\n", "not a JSON line"),
])
def test_a_malformed_request_gets_an_error_and_the_container_carries_on(monitors: Monitors, line: bytes,
                                                                        message: str) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo fine"], stdin=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(c.options.socket)
        sock.sendall(line)
        answer = json.loads(read_all(sock))
    assert message in answer["error"]
    attach = c.attach(stdin=True)
    c.start()
    attach.sendall(b"\n")
    assert streams(read_all(attach))[0] == b"fine\n"


def test_an_endless_request_line_is_cut_off(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read x"], stdin=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(c.options.socket)
        try:
            sock.sendall(b"x" * 200_000)
            answer = read_all(sock)
        except (BrokenPipeError, ConnectionResetError):
            answer = b"reset"  # closed with our unread bytes in its buffer: the kernel resets the connection
        assert b"too long" in answer or answer == b"reset"
    assert c.call("status")["status"] == "created"


def test_clients_that_vanish_mid_stream_do_not_hurt_the_monitor(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done"])
    quitters = [c.attach() for _ in range(5)]
    keeper = c.attach()
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(c.options.socket)
    half.sendall(b'{"op": "wa')  # never finishes its request
    c.start()
    for q in quitters:
        q.close()
    assert streams(read_all(keeper))[0] == b"".join(b"line%d\n" % i for i in range(3000))
    assert c.exited()["exit_code"] == 0
    half.close()


def test_the_documented_command_line_runs_a_monitor_in_the_foreground(monitors: Monitors) -> None:
    options = monitors.options(["sh", "-c", "echo foreground; exit 5"])
    proc = subprocess.Popen([sys.executable, "-m", "berth.monitor", *options.to_argv()], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    c = monitors.made[-1]
    c.monitor_pid = proc.pid
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(options.socket):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        attach = c.attach()
        c.start()
        assert streams(read_all(attach))[0] == b"foreground\n"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(c.exit_file.read_text())["exit_code"] == 5


def test_the_command_line_reports_a_create_error_on_stderr(monitors: Monitors) -> None:
    options = monitors.options(["nope"])
    proc = subprocess.run([sys.executable, "-m", "berth.monitor", *options.to_argv()], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert 'exec: "nope": executable file not found in $PATH' in proc.stderr
    assert_nothing_left(monitors)


def test_the_command_line_refuses_bad_options(monitors: Monitors) -> None:
    proc = subprocess.run([sys.executable, "-m", "berth.monitor", "--id", "x", "--log-max-file", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "max-file must be at least 1" in proc.stderr or "missing monitor option" in proc.stderr


def test_a_missing_container_directory_is_reported(monitors: Monitors) -> None:
    options = monitors.options(["true"])
    options = type(options)(**{**{n: getattr(options, n) for n in options.__record_fields__},
                               "container_dir": options.container_dir + "/missing"})
    with pytest.raises(NotFound, match="container directory .*/missing does not exist"):
        monitors.launch(options)
    assert_nothing_left(monitors)


def test_a_second_monitor_for_a_running_container_is_refused_and_touches_nothing(monitors: Monitors) -> None:
    first = monitors.spawn(["sh", "-c", "read x; echo $x"], stdin=True)
    first.start()
    started = (first.dir / "started.json").read_text()
    with pytest.raises(Conflict, match="already listens"):
        monitors.launch(first.options)
    assert (first.dir / "started.json").read_text() == started
    assert first.call("status")["status"] == "running"
    attach = first.attach(stdin=True)
    attach.sendall(b"unharmed\n")
    assert streams(read_all(attach))[0] == b"unharmed\n"
