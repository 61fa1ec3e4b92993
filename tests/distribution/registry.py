"""Debian's docker-registry (the reference distribution server) as a test peer, and skopeo to seed it.

`with ReferenceRegistry(tmp) as reg:` serves http://127.0.0.1:<port> with filesystem storage under tmp;
`htpasswd={"user": "pw"}` turns on Basic auth. Never a system service: a private process per fixture.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ReferenceRegistry:
    def __init__(self, base: Path, htpasswd: dict[str, str] | None = None, extra_yaml: str = "",
                 netns: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="registry-", dir=base))
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.htpasswd = htpasswd
        self.extra_yaml = extra_yaml
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "registry.log"
        # in another network namespace (a PrivateDockerd's), reached only from there
        self.prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []

    def _config(self) -> Path:
        auth = ""
        if self.htpasswd:
            path = self.dir / "htpasswd"
            for i, (user, pw) in enumerate(self.htpasswd.items()):
                subprocess.run(["htpasswd", "-B", "-b"] + (["-c"] if i == 0 else []) + [str(path), user, pw],
                               check=True, capture_output=True)
            auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {path}\n"
        cfg = self.dir / "config.yml"
        cfg.write_text(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n" + auth + self.extra_yaml)
        return cfg

    def start(self) -> ReferenceRegistry:
        cfg = self._config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*self.prefix, REGISTRY, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while self.prefix:
            if "listening on" in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # 401 with auth: it answers
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> ReferenceRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seed(self, archive: Path, repo_tag: str, creds: str | None = None, fmt: str | None = None) -> None:
        """skopeo copy docker-archive:<archive> docker://<host>/<repo:tag>."""
        args = [SKOPEO, "copy", "--quiet", "--dest-tls-verify=false"]
        if creds:
            args += ["--dest-creds", creds]
        if fmt:
            args += ["--format", fmt]
        subprocess.run([*self.prefix, *args, f"docker-archive:{archive}", f"docker://{self.host}/{repo_tag}"], check=True,
                       capture_output=True, timeout=300)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        req = urllib.request.Request(f"http://{self.host}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)
