"""DESIGN.md's package order is enforced by import-linter, run here so a plain pytest run catches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint() -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True)


def test_packages_import_only_downward() -> None:
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "KEPT" in proc.stdout


def test_an_upward_import_is_caught() -> None:
    """The contract itself must be able to fail: a module in oci importing the engine breaks it."""
    bad = ROOT / "src" / "berth" / "oci" / "_layering_probe.py"
    bad.write_text("import berth.engine  # noqa: F401\n")
    try:
        proc = _lint()
    finally:
        bad.unlink()
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "berth.oci._layering_probe" in proc.stdout
