"""A private berthd for tests and benchmarks: its own root, exec-root and socket under one temp dir.

`with PrivateBerthd() as b: b.docker("images")` drives it with the real docker CLI; `b.kill()` is kill -9 (for
crash tests) and `b.start()` brings it back on the same root. Stopping unmounts anything left under its dir.
Fixtures: `berthd` (one per test module). Import them: `from tests.berthd import berthd  # noqa: F401`.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import _mounts_under, _pids_mentioning, _ping, docker

BERTHD = str(Path(sys.executable).with_name("berthd"))
BERTH = str(Path(sys.executable).with_name("berth"))


class PrivateBerthd:
    def __init__(self, base_dir: Path | None = None, start_timeout: float = 30.0,
                 daemon_args: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="berth-berthd-", dir=base_dir))
        self.daemon_args = daemon_args   # more berthd flags (e.g. --init)
        self.root = self.dir / "root"
        self.exec_root = self.dir / "exec"
        self.socket_path = self.dir / "berth.sock"
        self.log_path = self.dir / "berthd.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.bridge, self.bip, self.pool, self._slot_lock = _private_network()

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> PrivateBerthd:
        sweep_dead_daemons()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [BERTHD, "--host", self.host, "--root", str(self.root), "--exec-root", str(self.exec_root),
                 "--bridge", self.bridge, "--bip", self.bip, "--default-address-pool", self.pool, *self.daemon_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not _ping(self.socket_path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"berthd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"berthd did not answer /_ping in {self.start_timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def cleanup(self) -> None:
        """Stop berthd, then whatever it left running (monitors, their containers, the monitor fork server)."""
        self.stop()
        for pid in _pids_mentioning(str(self.dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount_point in sorted(_mounts_under(str(self.dir)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True)
        remove_network_leftovers(self.bridge, self.root)
        if self._slot_lock >= 0:           # the subnets are free for another instance now (once: fds get reused)
            with contextlib.suppress(OSError):
                os.close(self._slot_lock)
            self._slot_lock = -1
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> PrivateBerthd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def docker(self, *args: str, input: bytes | None = None, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return docker(self.host, *args, input=input, check=check, env=env)

    def api(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One raw Engine API call over the socket; returns (status, body)."""
        conn = _UnixHTTPConnection(str(self.socket_path))
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def berth(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([BERTH, "-H", self.host, *args], input=input, capture_output=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"berth {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
        return proc


_counter = itertools.count()


def _routes() -> list[ipaddress.IPv4Network]:
    out = []
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            dst, mask = (socket.inet_ntoa(int(x, 16).to_bytes(4, "little")) for x in (fields[1], fields[7]))
            if mask != "0.0.0.0":
                out.append(ipaddress.IPv4Network(f"{dst}/{mask}", strict=False))
    return out


def _private_network() -> tuple[str, str, str, int]:
    """A bridge name (<= 15 chars) and subnets no other live berthd of this machine uses: a /21 of 10.200.0.0/13
    (its first /24 for the default bridge, its upper /22 for user networks in /26s), held by an flock on
    /tmp/berth-test-slots/<slot> for the instance's life (released by the kernel if the test process dies), and
    skipping any that a route already covers. Returns the lock's fd too."""
    import fcntl
    n = next(_counter)
    used = _routes()
    blocks = list(ipaddress.IPv4Network("10.200.0.0/13").subnets(new_prefix=21))
    slots = Path("/tmp/berth-test-slots")
    slots.mkdir(exist_ok=True)
    for attempt in range(len(blocks)):
        slot = (os.getpid() * 7 + n * 13 + attempt) % len(blocks)
        net = blocks[slot]
        if any(net.overlaps(r) for r in used):
            continue
        fd = os.open(slots / str(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        first = next(net.subnets(new_prefix=24))
        pool = list(net.subnets(new_prefix=22))[1]
        return f"bb{os.getpid():x}x{n:x}"[:15], f"{first.network_address + 1}/24", f"base={pool},size=26", fd
    raise RuntimeError("no free private subnet left in 10.200.0.0/13 for another berthd")


def remove_network_leftovers(bridge: str, root: Path) -> None:
    """What a berthd with this default bridge left in the kernel, even after kill -9: its user networks' bridges
    (from the records under root), every veth on them, the bridges, and its nft table."""
    bridges = [bridge]
    with contextlib.suppress(OSError):
        for record in (root / "networks").glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                name = json.loads(record.read_text()).get("bridge")
                if name and name not in bridges:
                    bridges.append(name)
    for br in bridges:
        out = subprocess.run(["ip", "-o", "link", "show", "master", br], capture_output=True, text=True).stdout
        for line in out.splitlines():
            ifname = line.split(":")[1].strip().split("@")[0]
            subprocess.run(["ip", "link", "del", ifname], capture_output=True)
        subprocess.run(["ip", "link", "del", br], capture_output=True)
    table = "berth_" + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in bridge)
    subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)


_PRIVATE_BRIDGE = re.compile(r"bb([0-9a-f]+)x[0-9a-f]+")
_TEST_RANGE = ipaddress.IPv4Network("10.200.0.0/13")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_daemons() -> None:
    """Kernel state of private berthds whose test process died without cleaning up (kill -9 of pytest): bridges
    and nft tables named after a dead pid, and user-network bridges in the test range that no live berth table
    mentions (a berthd writes a network's rules before it creates its bridge, so a live one is always named)."""
    links = [p.name for p in Path("/sys/class/net").iterdir()]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.split()
    for name in links:
        match = _PRIVATE_BRIDGE.fullmatch(name)
        if match and not _alive(int(match.group(1), 16)):
            remove_network_leftovers(name, Path("/nonexistent"))
    for table in tables:
        match = _PRIVATE_BRIDGE.fullmatch(table.removeprefix("berth_"))
        if table.startswith("berth_") and match and not _alive(int(match.group(1), 16)):
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    named = set(re.findall(r'"(br-[0-9a-f]{12})"', ruleset))
    for name in links:
        if not re.fullmatch(r"br-[0-9a-f]{12}", name) or name in named:
            continue
        addrs = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", name], capture_output=True,
                               text=True).stdout.split()
        nets = [ipaddress.IPv4Interface(a).network for a in addrs if "/" in a and a[0].isdigit()]
        if nets and all(n.subnet_of(_TEST_RANGE) for n in nets):
            remove_network_leftovers(name, Path("/nonexistent"))


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=600)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


@pytest.fixture(scope="module")
def berthd() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as b:
        yield b
