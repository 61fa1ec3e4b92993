"""`berth login`, `push`, `pull`, `logout` and `berth registry serve`: the berth CLI, berthd and berth's own
registry (htpasswd auth) together, then the pulled image runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.berthd import BERTH, PrivateBerthd

pytestmark = pytest.mark.root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_login_push_pull_logout_through_berths_own_registry(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(htpasswd), "alice", "s3cret"], check=True, capture_output=True)
    port = _free_port()
    registry = subprocess.Popen([BERTH, "registry", "serve", "--listen", f"127.0.0.1:{port}", "--root",
                                 str(tmp_path / "registry"), "--htpasswd", str(htpasswd)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "config")}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with PrivateBerthd() as b:
            def berth(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
                return subprocess.run([BERTH, "-H", b.host, *args], input=input, capture_output=True, env=env)

            assert berth("image", "bootstrap", "busybox").returncode == 0
            ref = f"127.0.0.1:{port}/team/bb:1"
            assert berth("tag", "busybox", ref).returncode == 0
            refused = berth("push", ref)
            assert refused.returncode == 1 and refused.stderr, refused
            wrong = berth("login", "-u", "alice", "--password-stdin", f"127.0.0.1:{port}", input=b"nope\n")
            assert wrong.returncode == 1 and not (tmp_path / "config" / "config.json").exists()
            ok = berth("login", "-u", "alice", "--password-stdin", f"127.0.0.1:{port}", input=b"s3cret\n")
            assert ok.returncode == 0 and ok.stdout == b"Login Succeeded\n", ok
            config = tmp_path / "config" / "config.json"
            assert (config.stat().st_mode & 0o777) == 0o600 and f"127.0.0.1:{port}" in config.read_text()
            pushed = berth("push", ref)
            assert pushed.returncode == 0, pushed
            assert berth("rmi", ref, "busybox").returncode == 0
            pulled = berth("pull", ref)
            assert pulled.returncode == 0 and pulled.stdout.decode().splitlines()[-1] == ref, pulled
            out = b.docker("run", "--rm", ref, "echo", "pulled and ran")
            assert out.stdout == b"pulled and ran\n"
            inspect = json.loads(berth("image", "inspect", ref).stdout)[0]
            assert inspect["RepoDigests"] and inspect["RepoDigests"][0].startswith(f"127.0.0.1:{port}/team/bb@")
            assert berth("logout", f"127.0.0.1:{port}").stdout == f"Removing login credentials for 127.0.0.1:{port}\n".encode()
            assert berth("pull", ref).returncode == 1      # anonymous again: the registry says no
    finally:
        registry.terminate()
        registry.wait(timeout=10)
