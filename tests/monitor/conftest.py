"""Fixtures for the monitor tests: a container directory with a busybox bundle, monitors spawned for real, and a
teardown that ends whatever is left and then checks that nothing leaked: no monitor process, no container
process, no runtime state, no cgroup, no socket.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from berth.errors import BerthError
from berth.monitor import MonitorOptions, client, spawn
from berth.monitor.protocol import read_frames
from berth.monitor.spawn import stop_zygote
from berth.runtime import api
from berth.runtime.cgroups import open_cgroup
from tests.runtime.conftest import default_config, make_rootfs


def alive(pid: int) -> bool:
    """Running, not a zombie (an exited monitor is reaped by init, maybe not at once)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if text.encode() in f.read() and alive(int(name)):
                    found.append(int(name))
        except OSError:
            continue
    return found


def read_all(sock: socket.socket, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def streams(data: bytes) -> tuple[bytes, bytes]:
    frames, rest = read_frames(data)
    assert rest == b"", f"a truncated frame: {rest!r}"
    out = b"".join(p for s, p in frames if s == 1)
    err = b"".join(p for s, p in frames if s == 2)
    assert all(s in (1, 2) for s, _ in frames)
    return out, err


def wait_for_file(path: Path, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)
    value: dict[str, Any] = json.loads(path.read_text())
    return value


@dataclass
class Container:
    options: MonitorOptions
    monitor_pid: int = 0

    @property
    def dir(self) -> Path:
        return Path(self.options.container_dir)

    @property
    def exit_file(self) -> Path:
        return self.dir / "exit.json"

    @property
    def log_file(self) -> Path:
        return Path(self.options.log_path)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        return client.call(self.options.socket, {"op": op, **args})

    def attach(self, **flags: bool) -> socket.socket:
        return client.attach(self.options.socket, **flags)

    def start(self) -> None:
        assert self.call("start") == {"ok": True}

    def kill(self, sig: int = signal.SIGKILL) -> None:
        api.kill(self.options.container_id, self.options.state_root, sig)

    def exited(self) -> dict[str, Any]:
        """The exit record, once the monitor has written it and is gone."""
        record = wait_for_file(self.exit_file)
        assert wait_gone(self.monitor_pid), f"monitor {self.monitor_pid} lingers after writing exit.json"
        return record

    def log_entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]


@dataclass
class Monitors:
    base: Path
    sockets: Path
    state_root: Path
    zygote: str | None = None  # the fork server's socket, or None to exec each monitor
    made: list[Container] = field(default_factory=list)

    def options(self, args: list[str], *, tty: bool = False, mutate: Any = None, **opts: Any) -> MonitorOptions:
        n = len(self.made)
        cid = f"bm-{os.getpid()}-{n}"
        cdir = self.base / f"c{n}"
        (cdir / "bundle").mkdir(parents=True)
        make_rootfs(cdir / "bundle" / "rootfs")
        cfg = default_config(args)
        cfg["process"]["terminal"] = tty
        if mutate is not None:
            mutate(cfg)
        (cdir / "bundle" / "config.json").write_text(json.dumps(cfg))
        options = MonitorOptions(cid, str(cdir / "bundle"), str(self.state_root), str(cdir),
                                 str(self.sockets / f"{n}.sock"), tty=tty, **opts)
        self.made.append(Container(options))
        return options

    def spawn(self, args: list[str], **kwargs: Any) -> Container:
        options = self.options(args, **kwargs)
        container = self.made[-1]
        container.monitor_pid = self.launch(options)
        return container

    def launch(self, options: MonitorOptions) -> int:
        return spawn(options, zygote=self.zygote)

    def cleanup(self) -> list[str]:
        left = []
        for c in self.made:
            cid, root = c.options.container_id, c.options.state_root
            if c.monitor_pid and alive(c.monitor_pid):
                if c.options.runtime != "berth":
                    subprocess.run([c.options.runtime, "--root", root, "kill", cid, "KILL"], capture_output=True)
                try:
                    api.kill(cid, root, signal.SIGKILL)
                except BerthError:
                    pass
                if not wait_gone(c.monitor_pid):
                    left.append(f"monitor {c.monitor_pid} of {cid} outlived its container")
                    os.kill(c.monitor_pid, signal.SIGKILL)
                    wait_gone(c.monitor_pid)
            rt = [c.options.runtime, "--root", root]
            if c.options.runtime != "berth" and subprocess.run([*rt, "state", cid], capture_output=True).returncode == 0:
                left.append(f"{c.options.runtime} state of {cid}")
                subprocess.run([*rt, "delete", "--force", cid], capture_output=True)
            try:
                api.delete(cid, root, force=True)
                left.append(f"runtime state of {cid}")
            except BerthError:
                pass
            for d in open_cgroup(None, cid).dirs():
                if os.path.exists(d):
                    left.append(f"cgroup {d}")
            if os.path.lexists(c.options.socket):
                left.append(f"socket {c.options.socket}")
            for pid in processes_mentioning(cid):
                left.append(f"process {pid} of {cid}")
                os.kill(pid, signal.SIGKILL)
        mountinfo = Path("/proc/self/mountinfo").read_text()
        if str(self.base) in mountinfo:
            left.append(f"a mount under {self.base}")
        return left


@pytest.fixture(scope="session")
def zygote_path() -> Iterator[str]:
    """One monitor fork server for the session (started on first use by spawn), stopped at the end."""
    directory = tempfile.mkdtemp(prefix="bz", dir="/tmp")
    path = os.path.join(directory, "zygote.sock")
    yield path
    stop_zygote(path)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["exec", "zygote"])
def monitors(request: pytest.FixtureRequest, tmp_path: Path, zygote_path: str) -> Iterator[Monitors]:
    """Monitors started both ways: a fresh interpreter each, or forked by the zygote."""
    # unix socket paths are limited to 107 bytes: a short directory rather than tmp_path
    sockets = Path(tempfile.mkdtemp(prefix="bm", dir="/tmp"))
    m = Monitors(tmp_path, sockets, tmp_path / "state", zygote_path if request.param == "zygote" else None)
    try:
        yield m
    finally:
        left = m.cleanup()
        shutil.rmtree(sockets, ignore_errors=True)
    assert not left, f"left behind: {left}"
