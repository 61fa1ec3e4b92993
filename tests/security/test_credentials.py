"""Registry credentials stay where they belong (security-cases.md case 14): `berth login` against berth's own
registry (htpasswd basic auth on 127.0.0.1) writes them 0600 in a 0700 directory, and the password never shows in
any output of login, push, pull, a failed login, the docker CLI's login through berthd's /auth, berthd's log or
the registry's log, nor in `docker info` or `system events`.
"""

from __future__ import annotations

import os
import secrets
import socket
import stat
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


def test_the_password_is_stored_privately_and_never_printed_or_logged(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_hex(8)
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(htpasswd), "alice", password], check=True, capture_output=True)
    port = _free_port()
    registry_log = tmp_path / "registry.log"
    with open(registry_log, "wb") as log:
        registry = subprocess.Popen([BERTH, "registry", "serve", "--listen", f"127.0.0.1:{port}", "--root",
                                     str(tmp_path / "registry"), "--htpasswd", str(htpasswd)],
                                    stdout=log, stderr=subprocess.STDOUT)
    config_dir = tmp_path / "config"
    env = {**os.environ, "DOCKER_CONFIG": str(config_dir)}
    outputs: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with PrivateBerthd() as b:
            def berth(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
                proc = subprocess.run([BERTH, "-H", b.host, *args], input=input, capture_output=True, env=env)
                outputs.extend((proc.stdout, proc.stderr))
                return proc

            assert berth("image", "bootstrap", "busybox").returncode == 0
            host = f"127.0.0.1:{port}"
            wrong = berth("login", "-u", "alice", "--password-stdin", host, input=f"{password}x\n".encode())
            assert wrong.returncode != 0
            ok = berth("login", "-u", "alice", "--password-stdin", host, input=f"{password}\n".encode())
            assert ok.returncode == 0, ok
            assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
            assert stat.S_IMODE((config_dir / "config.json").stat().st_mode) == 0o600
            assert berth("tag", "busybox", f"{host}/team/bb:1").returncode == 0
            assert berth("push", f"{host}/team/bb:1").returncode == 0
            assert berth("rmi", f"{host}/team/bb:1").returncode == 0
            assert berth("pull", f"{host}/team/bb:1").returncode == 0
            # the docker CLI's login goes through berthd's /auth
            cli = b.docker("login", "-u", "alice", "--password-stdin", host, input=password.encode(),
                           env={**env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}, check=False)
            outputs.extend((cli.stdout, cli.stderr))
            assert cli.returncode == 0, cli
            outputs.append(b.docker("info", check=False).stdout)
            events = b.docker("system", "events", "--since", "0", "--until", "1s", check=False)
            outputs.extend((events.stdout, events.stderr))
            outputs.append(b.log_path.read_bytes())
    finally:
        registry.terminate()
        registry.wait(10)
    outputs.append(registry_log.read_bytes())
    leaks = [out[:200] for out in outputs if password.encode() in out]
    assert leaks == [], leaks
