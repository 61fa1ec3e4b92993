"""`berth run -it` through a real pty: raw mode, the window size sent to the container, output, the container's
exit code, detach keys, and the local terminal restored afterwards; `--sig-proxy` without a tty."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import BERTH, PrivateBerthd

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def bd() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        yield daemon


class Pty:
    """A shell script run on a fresh pty of a given size; read() collects its output."""

    def __init__(self, script: str, rows: int = 33, cols: int = 101) -> None:
        pid, fd = pty.fork()
        if pid == 0:   # the child: its stdin/stdout/stderr are the pty
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvp("sh", ["sh", "-c", script])
        self.pid, self.fd, self.buf = pid, fd, b""

    def read_until(self, needle: bytes, timeout: float = 20) -> bool:
        end = time.monotonic() + timeout
        while needle not in self.buf and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                self.buf += data
        return needle in self.buf

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> int:
        try:
            _, status = os.waitpid(self.pid, 0)
        finally:
            os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def _script(bd: PrivateBerthd, tmp: Path, berth_args: str) -> str:
    return (f"stty -g > {tmp}/before; {BERTH} -H {bd.host} {berth_args}; echo \"rc=$?\"; "
            f"stty -g > {tmp}/after")


def test_run_it_runs_a_shell_sends_the_size_and_restores_the_terminal(bd: PrivateBerthd, tmp_path: Path) -> None:
    term = Pty(_script(bd, tmp_path, "run -it --rm busybox sh"))
    try:
        assert term.read_until(b"# "), term.buf
        term.write(b"echo hi; stty size; exit 3\r")
        assert term.read_until(b"rc="), term.buf
        term.read_until(b"\n", timeout=2)
    finally:
        term.close()
    out = term.buf.decode(errors="replace")
    assert "\r\nhi\r\n" in out                  # the container's tty turns \n into \r\n
    assert "33 101\r\n" in out                  # the local window size reached the container
    assert "rc=3" in out
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()   # cooked again
    assert bd.berth("ps", "-aq").stdout == b""


def test_detach_keys_leave_the_container_running(bd: PrivateBerthd, tmp_path: Path) -> None:
    term = Pty(_script(bd, tmp_path, "run -it --name detachable busybox sh"))
    try:
        assert term.read_until(b"# "), term.buf
        term.write(b"\x10\x11")   # ctrl-p ctrl-q
        assert term.read_until(b"rc=0"), term.buf
    finally:
        term.close()
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    assert bd.berth("inspect", "-f", "{{.State.Running}}", "detachable").stdout == b"true\n"
    term = Pty(_script(bd, tmp_path, "attach --detach-keys ctrl-x detachable"))
    try:
        time.sleep(1.5)   # typed once attached (before, the cooked local tty would echo and buffer the line)
        term.write(b"echo again; exit 6\r")
        assert term.read_until(b"rc=6"), term.buf
    finally:
        term.close()
    assert b"again" in term.buf
    bd.berth("rm", "detachable")


def test_run_t_without_a_terminal_on_stdin_is_refused_like_docker(bd: PrivateBerthd) -> None:
    o = bd.berth("run", "-it", "--rm", "busybox", "true", check=False)
    d = bd.docker("run", "-it", "--rm", "busybox", "true", check=False)
    assert (o.returncode, o.stderr) == (d.returncode, d.stderr.replace(b"docker", b"berth"))
    # -t alone does not read stdin: fine without a terminal, output raw with \r\n
    o = bd.berth("run", "-t", "--rm", "busybox", "echo", "tty")
    assert o.stdout == b"tty\r\n"


def test_sig_proxy_forwards_signals_to_the_container(bd: PrivateBerthd) -> None:
    proc = subprocess.Popen([BERTH, "-H", bd.host, "run", "--rm", "busybox", "sh", "-c",
                             "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 9
        assert proc.stdout.read() == b"got-int\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_no_sig_proxy_leaves_the_container_alone(bd: PrivateBerthd) -> None:
    proc = subprocess.Popen([BERTH, "-H", bd.host, "run", "--sig-proxy=false", "--name", "unproxied", "busybox",
                             "sh", "-c", "echo ready; while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert bd.berth("inspect", "-f", "{{.State.Running}}", "unproxied").stdout == b"true\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        bd.berth("rm", "-f", "unproxied", check=False)


def test_stdin_is_streamed_and_half_closed(bd: PrivateBerthd) -> None:
    data = os.urandom(300_000).hex().encode()
    o = subprocess.run([BERTH, "-H", bd.host, "run", "--rm", "-i", "busybox", "sh", "-c", "wc -c; echo done >&2"],
                       input=data, capture_output=True, timeout=60)
    assert (o.returncode, o.stdout.strip(), o.stderr) == (0, str(len(data)).encode(), b"done\n")
    _ = sys.executable


def test_exec_it_and_start_ai_through_a_pty(bd: PrivateBerthd, tmp_path: Path) -> None:
    bd.berth("run", "-d", "--name", "execpty", "busybox", "sleep", "600")
    term = Pty(_script(bd, tmp_path, "exec -it execpty sh"), rows=20, cols=70)
    try:
        assert term.read_until(b"# "), term.buf
        term.write(b"stty size; exit 2\r")
        assert term.read_until(b"rc="), term.buf
        term.read_until(b"\n", timeout=2)
    finally:
        term.close()
    assert b"20 70\r\n" in term.buf and b"rc=2" in term.buf
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    bd.berth("rm", "-f", "execpty")
    bd.berth("create", "-it", "--name", "startpty", "busybox", "sh")
    term = Pty(_script(bd, tmp_path, "start -ai startpty"))
    try:
        assert term.read_until(b"# "), term.buf
        term.write(b"echo started-ai; exit 4\r")
        assert term.read_until(b"rc="), term.buf
        term.read_until(b"\n", timeout=2)
    finally:
        term.close()
    assert b"started-ai\r\n" in term.buf and b"rc=4" in term.buf
    bd.berth("rm", "startpty")


def test_stats_streams_until_interrupted(bd: PrivateBerthd) -> None:
    bd.berth("run", "-d", "--name", "statstream", "busybox", "sleep", "600")
    proc = subprocess.Popen([BERTH, "-H", bd.host, "stats", "--format", "{{.Name}} {{.PIDs}}", "statstream"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        bd.berth("rm", "-f", "statstream")
    assert proc.returncode == 130
    assert out.count(b"statstream 1\n") >= 2, out


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_sigterm_while_raw_restores_the_terminal(bd: PrivateBerthd, tmp_path: Path) -> None:
    term = Pty(_script(bd, tmp_path, "run -it --name termed busybox sh"))
    try:
        assert term.read_until(b"# "), term.buf
        children = _children(term.pid)
        assert len(children) == 1
        os.kill(children[0], signal.SIGTERM)
        assert term.read_until(b"rc="), term.buf
        term.read_until(b"\n", timeout=2)
    finally:
        term.close()
        bd.berth("rm", "-f", "termed", check=False)
    assert b"rc=143" in term.buf
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()


def test_attach_relays_output_forwards_signals_and_exits_with_the_container(bd: PrivateBerthd) -> None:
    bd.berth("run", "-d", "--name", "attachable", "busybox", "sh", "-c",
             "trap 'echo bye; exit 8' INT; while true; do echo tick; sleep 0.2; done")
    proc = subprocess.Popen([BERTH, "-H", bd.host, "attach", "--no-stdin", "attachable"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"tick\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 8
        assert proc.stdout.read().endswith(b"bye\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        bd.berth("rm", "-f", "attachable", check=False)
    o = bd.berth("attach", "attachable", check=False)
    d = bd.docker("attach", "attachable", check=False)
    assert (o.returncode, o.stderr) == (d.returncode, d.stderr)
