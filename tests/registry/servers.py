"""Registry servers for tests and benchmarks: berth's (`python -m berth.registry serve`) and Debian's
docker-registry (distribution 2.8, the reference), each a real process on a free loopback port, plus an
OCI image layout writer so skopeo has something to copy.

May import: the standard library, requests. Nothing from berth (the server is driven as a separate app).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

DOCKER_REGISTRY = "/usr/bin/docker-registry"
REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RegistryServer:
    """A running registry process; `url` is http(s)://127.0.0.1:PORT, `host` the HOST:PORT for references."""

    kind: str
    url: str
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.session.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0,
                verify: bool | str = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unverified readiness probe of a TLS server
                requests.get(url + "/v2/", timeout=1, verify=verify)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"registry at {url} did not answer in {timeout}s: {log.read_text()[-2000:]}")


def start_berth(workdir: Path, *extra: str, netns: str | None = None, tls: bool = False,
                port: int | None = None) -> RegistryServer:
    root = workdir / "berth-root"
    port = port or free_port()
    log = workdir / f"berth-registry-{port}.log"
    cmd = [PYTHON, "-m", "berth.registry", "serve", "--listen", f"127.0.0.1:{port}", "--root", str(root), *extra]
    if netns is not None:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    if netns is None:
        _wait_ready(url, proc, log, verify=not tls)
    else:
        _wait_log(log, "listening on", proc)
    return RegistryServer("berth", url, root, proc, log)


def _wait_log(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"registry did not start: {log.read_text()[-2000:]}")


def start_docker_registry(workdir: Path) -> RegistryServer:
    root = workdir / "distribution-root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "distribution.yml"
    # JSON is YAML: no YAML writer needed.
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "berth-test-secret"},
    }))
    log = workdir / "docker-registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([DOCKER_REGISTRY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, log)
    return RegistryServer("docker-registry", url, root, proc, log)


# -- OCI image layouts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def layer_tar(files: dict[str, bytes], gz: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0) if gz else raw.getvalue()


@dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


def make_image(layer_files: Sequence[dict[str, bytes]], gz: bool = True, env: Sequence[str] = ("PATH=/bin",),
               cmd: Sequence[str] = ("/bin/sh",), labels: dict[str, str] | None = None) -> Image:
    layers = tuple(Blob("application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else ""), layer_tar(f, gz))
                   for f in layer_files)
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(b.data) if gz else b.data).hexdigest() for b in layers]
    config = Blob("application/vnd.oci.image.config.v1+json", json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-11-28T00:00:00Z",
        "config": {"Env": list(env), "Cmd": list(cmd), "Entrypoint": ["/entry"], "WorkingDir": "/srv",
                   "Labels": labels or {"org.example.team": "berth"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-11-28T00:00:00Z", "created_by": f"ADD layer{i} /"} for i in range(len(layers))],
    }).encode())
    manifest = Blob("application/vnd.oci.image.manifest.v1+json", json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor(), "layers": [b.descriptor() for b in layers]}).encode())
    return Image(config, layers, manifest)


def write_oci_layout(directory: Path, image: Image, tag: str) -> Path:
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for b in (*image.blobs, image.manifest):
        (blobs / b.digest.split(":")[1]).write_bytes(b.data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    desc = {**image.manifest.descriptor(), "annotations": {"org.opencontainers.image.ref.name": tag}}
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return directory


def skopeo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


if __name__ == "__main__":  # a manual check: start both and print their URLs
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        with start_berth(Path(d)) as b, start_docker_registry(Path(d)) as r:
            print(b.url, r.url, file=sys.stderr)
