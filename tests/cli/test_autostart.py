"""berth starts a daemon when nobody answers on a socket it owns, says so, and never on somebody else's socket.

The daemon started is $BERTHD: here a script running tests/cli/tiny_daemon.py, a real process serving /_ping
and /images/json on the socket it is given with --host, exactly as berthd is invoked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_berthd(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / "berthd"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests/cli/tiny_daemon.py'} \"$@\"\n")
    script.chmod(0o755)
    yield script
    # kill any stand-in daemon this test started (they name our tmp_path on their command line)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"tiny_daemon.py" in cmdline and str(tmp_path).encode() in cmdline:
                os.kill(int(entry), signal.SIGKILL)


def run_berth(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "BERTH_HOST", "BERTH_NO_AUTOSTART")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "berth.cli.main", *args], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=60)


def _started_pid(stderr: str) -> int:
    m = re.search(r"started berthd \(pid (\d+)\)", stderr)
    assert m, stderr
    return int(m.group(1))


def test_no_daemon_on_berths_socket_starts_one_and_says_so(tmp_path: Path, fake_berthd: Path) -> None:
    sock = tmp_path / "run" / "berth.sock"
    proc = run_berth("-H", f"unix://{sock}", "images", env={"BERTHD": str(fake_berthd)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert proc.stderr.startswith(f"berth: no daemon answered on unix://{sock}; started berthd (pid ")
    assert proc.stderr.rstrip().endswith(f"log at {sock.parent}/berthd.log")
    pid = _started_pid(proc.stderr)
    assert Path(f"/proc/{pid}").exists()
    assert "tiny daemon listening" in (sock.parent / "berthd.log").read_text()
    again = run_berth("-H", f"unix://{sock}", "images", "-q", env={"BERTHD": str(fake_berthd)})
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # it answers now: no second start


def test_berth_host_counts_as_berths_own_socket(tmp_path: Path, fake_berthd: Path) -> None:
    sock = tmp_path / "b.sock"
    proc = run_berth("images", "-q", env={"BERTHD": str(fake_berthd), "BERTH_HOST": f"unix://{sock}"})
    assert proc.returncode == 0, proc.stderr
    assert "started berthd" in proc.stderr


def test_docker_host_is_never_auto_started(tmp_path: Path, fake_berthd: Path) -> None:
    sock = tmp_path / "berth.sock"
    proc = run_berth("images", env={"BERTHD": str(fake_berthd), "DOCKER_HOST": f"unix://{sock}"})
    assert proc.returncode == 1
    assert proc.stderr == f"Cannot connect to the Docker daemon at unix://{sock}. Is the docker daemon running?\n"
    assert not sock.exists()


def test_a_foreign_looking_flag_socket_is_not_auto_started(tmp_path: Path, fake_berthd: Path) -> None:
    proc = run_berth("-H", f"unix://{tmp_path}/docker.sock", "images", env={"BERTHD": str(fake_berthd)})
    assert proc.returncode == 1
    assert "Cannot connect" in proc.stderr and "started" not in proc.stderr


def test_berth_no_autostart_turns_it_off(tmp_path: Path, fake_berthd: Path) -> None:
    proc = run_berth("-H", f"unix://{tmp_path}/berth.sock", "images",
                     env={"BERTHD": str(fake_berthd), "BERTH_NO_AUTOSTART": "1"})
    assert proc.returncode == 1 and "Cannot connect" in proc.stderr


def test_a_daemon_that_dies_at_start_is_reported_with_its_log(tmp_path: Path, fake_berthd: Path) -> None:
    sock = tmp_path / "berth.sock"
    proc = run_berth("-H", f"unix://{sock}", "images", env={"BERTHD": str(fake_berthd), "TINY_DAEMON_FAIL": "1"})
    assert proc.returncode == 1
    assert "exited with status 3 before answering" in proc.stderr
    assert "tiny daemon refusing to start, as asked" in proc.stderr


def test_a_missing_berthd_is_reported(tmp_path: Path) -> None:
    proc = run_berth("-H", f"unix://{tmp_path}/berth.sock", "images", env={"BERTHD": str(tmp_path / "nope")})
    assert proc.returncode == 1
    assert proc.stderr == (f"no daemon answered on unix://{tmp_path}/berth.sock, and starting {tmp_path}/nope "
                           "failed: No such file or directory\n")


def test_two_clients_racing_start_one_daemon(tmp_path: Path, fake_berthd: Path) -> None:
    sock = tmp_path / "berth.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "BERTH_HOST")}
    env["BERTHD"] = str(fake_berthd)
    procs = [subprocess.Popen([sys.executable, "-m", "berth.cli.main", "-H", f"unix://{sock}", "images", "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert sum("started berthd" in err for _, err in results) == 1
    time.sleep(0.1)
    running = [e for e in os.listdir("/proc") if e.isdigit() and _cmdline_has(e, str(sock))]
    assert len(running) == 1


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
