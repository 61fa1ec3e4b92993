"""berth login, push and pull against berth's registry with token auth (its built-in token server, htpasswd users
and per-repository rights): the Bearer flow of berthd's registry client end to end, through the berth CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.berthd import BERTH, PrivateBerthd
from tests.registry.servers import free_port, start_berth

pytestmark = [pytest.mark.root]


def test_login_push_pull_with_token_auth_and_per_repository_rights(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(htpasswd), "dave", "dave-pw"], check=True, capture_output=True)
    acl = tmp_path / "acl.json"
    acl.write_text(json.dumps({"dave": {"dave/*": ["*"], "shared/*": ["pull"]}}))
    port = free_port()
    registry = f"127.0.0.1:{port}"
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "config")}
    with start_berth(tmp_path, "--htpasswd", str(htpasswd), "--token-realm", f"http://{registry}/token",
                     "--token-acl", str(acl), port=port), PrivateBerthd() as b:
        def berth(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run([BERTH, "-H", b.host, *args], input=input, capture_output=True, env=env)

        assert berth("image", "bootstrap", "busybox").returncode == 0
        mine, theirs = f"{registry}/dave/bb:1", f"{registry}/shared/bb:1"
        assert berth("tag", "busybox", mine).returncode == 0 and berth("tag", "busybox", theirs).returncode == 0
        anonymous = berth("push", mine)
        assert anonymous.returncode == 1 and b"unauthorized" in anonymous.stderr.lower(), anonymous
        wrong = berth("login", "-u", "dave", "--password-stdin", registry, input=b"nope\n")
        assert wrong.returncode == 1 and not (tmp_path / "config" / "config.json").exists(), wrong
        assert berth("login", "-u", "dave", "--password-stdin", registry, input=b"dave-pw\n").returncode == 0
        pushed = berth("push", mine)
        assert pushed.returncode == 0, pushed
        denied = berth("push", theirs)                  # dave may only pull from shared/*
        assert denied.returncode == 1 and denied.stderr, denied
        assert berth("rmi", mine, theirs, "busybox").returncode == 0
        pulled = berth("pull", mine)
        assert pulled.returncode == 0, pulled
        assert b.docker("run", "--rm", mine, "echo", "token").stdout == b"token\n"
