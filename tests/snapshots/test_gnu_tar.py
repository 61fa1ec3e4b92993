"""GNU tar as a reference peer: what it writes, berth unpacks to the tree GNU tar itself unpacks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from berth.snapshots.apply import apply_layer
from tests.snapshots.layers import fingerprint
from tests.snapshots.test_diff import _sample_tree

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar"])
def test_a_gnu_tar_archive_unpacks_like_gnu_tar_unpacks_it(tmp_path: Path, fmt: str) -> None:
    src = _sample_tree(tmp_path / "src")
    if fmt == "ustar":
        os.unlink(src / os.fsdecode(b"caf\xe9"))          # ustar has no room for it: GNU tar would skip it
    deep = src / "deep" / ("d" * 60) / ("e" * 60) / ("f" * 60)
    deep.mkdir(parents=True)
    (deep / "file").write_bytes(b"deep")
    archive = tmp_path / "layer.tar"
    subprocess.run(["tar", f"--format={fmt}", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-cf",
                    str(archive), "-C", str(src), "."], check=True, capture_output=True)
    reference = tmp_path / "reference"
    reference.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--same-owner", "--numeric-owner", "-xpf",
                    str(archive), "-C", str(reference)], check=True, capture_output=True)
    ours = tmp_path / "ours"
    ours.mkdir()
    with open(archive, "rb") as stream:
        apply_layer(stream, ours)
    expected, got = fingerprint(reference, dir_mtimes=True), fingerprint(ours, dir_mtimes=True)
    assert got == expected
