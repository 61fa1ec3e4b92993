"""Real third-party peers for tests and benchmarks: a private dockerd, and offline busybox images to seed it.

`PrivateDockerd` runs Debian's dockerd with its own data-root, exec-root, pidfile and unix socket under a temp
dir, with `--iptables=false --bridge=none`, inside its own network namespace (so it never touches the host's
docker0) and its own private mount namespace (so its overlay mounts vanish with it). Use it as a context manager
outside pytest too (bench/ scripts: `from tests.peers import PrivateDockerd`).

pytest fixtures live here, not in the shared conftest; a test module imports the ones it uses:
`from tests.peers import dockerd, seeded_dockerd  # noqa: F401`.

The netns is entered with `nsenter --net=` rather than `ip netns exec`: the latter remounts /sys for the
namespace, which hides /sys/fs/cgroup, and dockerd then refuses to start ("Devices cgroup isn't mounted").

May import: the standard library, pytest (only inside the fixture functions' module scope). Nothing from berth.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCKERD = "/usr/sbin/dockerd"
DOCKER_CLI = "/usr/local/bin/docker"  # the 28.x client; /usr/bin/docker is Debian's 20.10
BUSYBOX = "/bin/busybox"

# A test daemon to use instead of a private dockerd (e.g. berthd): `unix:///path/to.sock`.
DAEMON_ENV = "BERTH_TEST_DAEMON_HOST"


class PeerError(RuntimeError):
    """A peer could not be started or stopped cleanly."""


def _ping(sock_path: Path, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK")
    except OSError:
        return False


def _pids_mentioning(marker: str) -> list[int]:
    """Processes whose command line names our private directory: dockerd, its containerd, shims."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry))
    return pids


def _mounts_under(root: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point == root or mount_point.startswith(root + "/"):
                out.append(mount_point)
    return out


class PrivateDockerd:
    """A real dockerd of our own. `with PrivateDockerd() as d: d.docker("images")`.

    Everything lives under one temp dir (`self.root`); `stop()` kills every process naming that dir, unmounts
    anything under it, deletes the netns and the dir, and is safe to call twice or after a failed start.
    """

    def __init__(self, base_dir: Path | None = None, start_timeout: float = 60.0, bridge: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="berth-dockerd-", dir=base_dir))
        # bridge=True: dockerd's default bridge and its iptables rules, inside the daemon's own netns (safe for
        # the host); the default (no bridge) makes every container `--network none`-like and starts faster.
        self.bridge = bridge
        self.netns = f"berth-test-{secrets.token_hex(4)}"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.socket_path = self.root / "docker.sock"
        self.pidfile = self.root / "docker.pid"
        self.log_path = self.root / "dockerd.log"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._netns_made = False

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> PrivateDockerd:
        for tool in (DOCKERD, DOCKER_CLI):
            if not os.access(tool, os.X_OK):
                self.stop()
                raise PeerError(f"{tool} is not installed (apt-get install docker.io)")
        longest = self.exec_root / "containerd" / "containerd-debug.sock"
        if len(str(longest)) > 104:  # containerd refuses longer unix socket paths
            self.stop()
            raise PeerError(f"{self.root} is too deep for containerd's sockets ({longest} is over 104 bytes); "
                            "use a shorter base_dir")
        try:
            subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
            self._netns_made = True
            subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"],
                           check=True, capture_output=True)
            cmd = [
                "nsenter", f"--net=/run/netns/{self.netns}",
                # Private mount namespace: dockerd's overlay and shm mounts are not propagated to the host.
                "unshare", "--mount", "--propagation", "private",
                DOCKERD, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "-H", self.host, "--pidfile", str(self.pidfile), "--ip6tables=false", "--storage-driver=overlay2",
                *(() if self.bridge else ("--iptables=false", "--bridge=none")),
            ]
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              start_new_session=True)
            deadline = time.monotonic() + self.start_timeout
            while not _ping(self.socket_path):
                if self._proc.poll() is not None:
                    raise PeerError(f"dockerd exited with {self._proc.returncode}:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise PeerError(f"dockerd did not answer /_ping within {self.start_timeout}s:\n{self.log_tail()}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        marker = str(self.root)
        if self._proc is not None and self._proc.poll() is None:
            # SIGTERM: dockerd stops its containers and its containerd; give it a moment, then kill everything left.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while pids := _pids_mentioning(marker):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise PeerError(f"processes {pids} of the private dockerd at {marker} would not die")
            time.sleep(0.05)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        for mount_point in sorted(_mounts_under(marker), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True)
        if self._netns_made:
            subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
            self._netns_made = False
        if not _mounts_under(marker):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivateDockerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def docker(self, *args: str, input: bytes | None = None, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the real docker CLI against this daemon."""
        return docker(self.host, *args, input=input, check=check, env=env)


def docker(host: str, *args: str, input: bytes | None = None, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real docker CLI against `host` with a private, empty config dir."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
                "DOCKER_CONFIG": _empty_docker_config(), "DOCKER_CLI_HINTS": "false"}
    full_env.update(env or {})
    proc = subprocess.run([DOCKER_CLI, "-H", host, *args], input=input, capture_output=True, env=full_env)
    if check and proc.returncode != 0:
        raise PeerError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


_config_dir: str | None = None


def _empty_docker_config() -> str:
    global _config_dir
    if _config_dir is None or not os.path.isdir(_config_dir):
        _config_dir = tempfile.mkdtemp(prefix="berth-docker-config-")
    return _config_dir


# ---- offline images ------------------------------------------------------------------------------------------

def busybox_rootfs_tar(busybox: str = BUSYBOX) -> bytes:
    """A complete busybox userland as a rootfs tar: /bin/busybox, one symlink per applet, /etc basics."""
    listing = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout.split()
    buf = io.BytesIO()
    mtime = 1_700_000_000  # fixed: the same bytes (and image ID) every time

    def add_dir(tf: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
        tf.addfile(info)

    def add_file(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, mtime
        tf.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "proc", "sys", "dev"):
            add_dir(tf, d)
        add_dir(tf, "tmp", 0o1777)
        add_file(tf, "bin/busybox", Path(busybox).read_bytes(), 0o755)
        add_file(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        add_file(tf, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        for path in listing:
            rel = path.lstrip("/")
            if rel == "bin/busybox" or "/" not in rel:
                continue
            info = tarfile.TarInfo(rel)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "/bin/busybox", 0o777, mtime
            tf.addfile(info)
    return buf.getvalue()


@dataclass(frozen=True)
class SeededImages:
    """What `seed_images` put on a daemon."""

    busybox: str  # "busybox:latest", one layer, made by `docker import`
    layered: str  # "berth-layered:1", two layers plus metadata, made by the classic builder
    busybox_id: str
    layered_id: str


def _tar_bytes(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """A tar of (name, data or None for a directory, mode) entries with fixed times and owners."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1_700_000_000, mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def layered_image_archive(tag: str = "berth-layered:1") -> bytes:
    """A docker-archive (`docker save` format) of the image seed_images builds: busybox plus one RUN layer, with
    the builder's history entries. For daemons that cannot build."""
    import hashlib

    base = busybox_rootfs_tar()
    top = _tar_bytes([("data", None, 0o755), ("hello.txt", b"layered\n", 0o644)])
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in (base, top)]
    created = "2023-11-14T22:13:20Z"
    history = [
        {"created": created, "comment": "busybox from busybox-static"},
        {"created": created, "created_by": '/bin/sh -c #(nop)  LABEL org.example.team=berth org.example.tier=test',
         "empty_layer": True},
        {"created": created, "created_by": "/bin/sh -c #(nop)  ENV GREETING=hello", "empty_layer": True},
        {"created": created, "created_by": "/bin/sh -c echo layered > /hello.txt && mkdir -p /data"},
        {"created": created, "created_by": "/bin/sh -c #(nop) WORKDIR /data", "empty_layer": True},
        {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["cat" "/hello.txt"]', "empty_layer": True},
    ]
    config = {
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
                   "Cmd": ["cat", "/hello.txt"], "WorkingDir": "/data",
                   "Labels": {"org.example.team": "berth", "org.example.tier": "test"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]
    entries: list[tuple[str, bytes | None, int]] = [(config_name, config_bytes, 0o644)]
    for name, layer in zip(layer_names, (base, top), strict=True):
        entries += [(name.split("/")[0], None, 0o755), (name, layer, 0o644)]
    entries.append(("manifest.json", json.dumps(manifest).encode(), 0o644))
    return _tar_bytes(entries)


def seed_images(host: str, workdir: Path) -> SeededImages:
    """Import busybox:latest from /bin/busybox and build a 2-layer image on it, offline, through the docker CLI."""
    rootfs = workdir / "busybox-rootfs.tar"
    rootfs.write_bytes(busybox_rootfs_tar())
    docker(host, "import", "-c", 'CMD ["sh"]', "-m", "busybox from busybox-static", str(rootfs), "busybox:latest")
    ctx = workdir / "layered-ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        'LABEL org.example.team="berth" org.example.tier="test"\n'
        "ENV GREETING=hello\n"
        "RUN echo layered > /hello.txt && mkdir -p /data\n"
        "WORKDIR /data\n"
        'CMD ["cat", "/hello.txt"]\n'
    )
    built = docker(host, "build", "--network=none", "-t", "berth-layered:1", str(ctx), env={"DOCKER_BUILDKIT": "0"},
                   check=False)
    if built.returncode != 0:
        if b"page not found" not in built.stderr and b"not implemented" not in built.stderr.lower():
            raise PeerError(f"docker build exited {built.returncode}: {built.stderr.decode(errors='replace')}")
        # A daemon without a builder (berthd, for now): load the same two-layer image from an archive instead.
        archive = workdir / "layered.tar"
        archive.write_bytes(layered_image_archive())
        docker(host, "load", "-i", str(archive))
    ids = {}
    for ref in ("busybox:latest", "berth-layered:1"):
        out = docker(host, "image", "inspect", "--format", "{{.Id}}", ref).stdout.decode().strip()
        ids[ref] = out
    return SeededImages("busybox:latest", "berth-layered:1", ids["busybox:latest"], ids["berth-layered:1"])


def inspect_json(host: str, ref: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(docker(host, "image", "inspect", ref).stdout)
    return out


# ---- pytest fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def dockerd() -> Iterator[PrivateDockerd]:
    """A private real dockerd for the whole session (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    with PrivateDockerd() as d:
        yield d


@dataclass(frozen=True)
class Daemon:
    """The daemon a differential test drives with both CLIs: a private dockerd, or whatever $BERTH_TEST_DAEMON_HOST
    names (berthd), seeded with the same images."""

    host: str
    images: SeededImages
    workdir: Path


@pytest.fixture(scope="session")
def seeded_daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """$BERTH_TEST_DAEMON_HOST if set, else the session's private dockerd (the `dockerd` fixture when the test
    module imported it, else one of its own), seeded with busybox:latest and berth-layered:1."""
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    workdir = tmp_path_factory.mktemp("seed")
    given = os.environ.get(DAEMON_ENV)
    if given:
        yield Daemon(given, seed_images(given, workdir), workdir)
        return
    try:
        shared: PrivateDockerd = request.getfixturevalue("dockerd")
    except pytest.FixtureLookupError:
        with PrivateDockerd() as d:
            yield Daemon(d.host, seed_images(d.host, workdir), workdir)
        return
    yield Daemon(shared.host, seed_images(shared.host, workdir), workdir)
