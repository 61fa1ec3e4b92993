"""`python -m berth.registry`: argument errors are usage errors, and `gc` reports what it removed as JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.registry.servers import PYTHON, REPO_ROOT


def registry_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "berth.registry", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})


@pytest.mark.parametrize("args", [["serve", "--root", "/tmp/x", "--listen", "nonsense"],
                                  ["serve", "--root", "/tmp/x", "--listen", "127.0.0.1:99999"],
                                  ["serve", "--listen", "127.0.0.1:5000"], ["frobnicate"], []])
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    p = registry_cli(*args)
    assert p.returncode == 2
    assert "usage:" in p.stderr


def test_tls_needs_both_cert_and_key(tmp_path: Path) -> None:
    p = registry_cli("serve", "--root", str(tmp_path), "--listen", "127.0.0.1:0", "--tls-cert", str(tmp_path / "c"))
    assert p.returncode != 0
    assert "--tls-cert and --tls-key go together" in p.stderr


def test_token_auth_needs_users(tmp_path: Path) -> None:
    p = registry_cli("serve", "--root", str(tmp_path), "--token-realm", "http://127.0.0.1:1/token")
    assert p.returncode != 0
    assert "--htpasswd" in p.stderr


def test_gc_of_an_empty_root_reports_nothing_removed(tmp_path: Path) -> None:
    p = registry_cli("gc", "--root", str(tmp_path / "root"))
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["removed"] == [] and report["bytes_freed"] == 0
