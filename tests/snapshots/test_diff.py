"""Directories back into layers: write_tree and write_diff, checked by applying what they write."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from berth.oci.digest import Digest
from berth.snapshots.apply import apply_layer
from berth.snapshots.diff import write_diff, write_tree
from tests.snapshots.layers import fingerprint


def _sample_tree(top: Path) -> Path:
    (top / "etc" / "ssl").mkdir(parents=True)
    (top / "etc" / "hostname").write_bytes(b"box\n")
    (top / "etc" / "ssl" / "cert.pem").write_bytes(os.urandom(5000))
    (top / "bin").mkdir()
    (top / "bin" / "busybox").write_bytes(b"\x7fELF" + os.urandom(70000))
    os.chmod(top / "bin" / "busybox", 0o4755)
    os.link(top / "bin" / "busybox", top / "bin" / "ls")
    os.symlink("busybox", top / "bin" / "sh")
    os.symlink("/does/not/exist", top / "dangling")
    os.mkfifo(top / "fifo")
    (top / "empty").mkdir()
    os.setxattr(top / "etc" / "hostname", "user.tag", b"\xff\x00raw")
    (top / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    os.utime(top / "etc" / "hostname", (1_700_000_000, 1_700_000_000))
    return top


def _write(fn: object, src: Path, **kw: object) -> tuple[bytes, object]:
    buf = io.BytesIO()
    result = fn(src, buf, **kw)  # type: ignore[operator]
    return buf.getvalue(), result


def test_a_tree_written_as_a_layer_and_applied_again_is_the_same_tree(tmp_path: Path) -> None:
    src = _sample_tree(tmp_path / "src")
    blob, written = _write(write_tree, src)
    assert written.diff_id == Digest.of(blob) and written.entries == 12  # type: ignore[attr-defined]
    out = tmp_path / "out"
    out.mkdir()
    applied = apply_layer(io.BytesIO(blob), out)
    assert applied.diff_id == written.diff_id  # type: ignore[attr-defined]
    expected, got = fingerprint(src), fingerprint(out)
    expected.pop("."), got.pop(".")
    assert got == expected
    assert os.lstat(out / "bin" / "ls").st_ino == os.lstat(out / "bin" / "busybox").st_ino


def test_write_tree_is_deterministic_and_clamps_mtimes(tmp_path: Path) -> None:
    src = _sample_tree(tmp_path / "src")
    first, a = _write(write_tree, src, clamp_mtime=1_000_000_000)
    os.utime(src / "bin" / "busybox")          # touched now: the clamp hides it
    second, b = _write(write_tree, src, clamp_mtime=1_000_000_000)
    assert first == second and a.diff_id == b.diff_id  # type: ignore[attr-defined]
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert all(m.mtime <= 1_000_000_000 for m in members)
    names = [m.name for m in members]
    assert names.index("etc") < names.index("etc/ssl") < names.index("etc/ssl/cert.pem")
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert [m.type for m in members if m.name == "bin/ls"] == [tarfile.LNKTYPE]


@pytest.mark.root
def test_write_diff_turns_overlay_whiteouts_and_opaque_dirs_into_tar_entries(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR, 0)
    (upper / "var" / "cache").mkdir(parents=True)
    os.setxattr(upper / "var" / "cache", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "var", "trusted.overlay.impure", b"y")
    (upper / "var" / "cache" / "fresh").write_bytes(b"f")
    os.mknod(upper / "dev-null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    blob, _ = _write(write_diff, upper)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"etc", "etc/.wh.gone", "var", "var/cache", "var/cache/.wh..wh..opq",
                            "var/cache/fresh", "dev-null"}
    assert members["etc/.wh.gone"].isreg() and members["etc/.wh.gone"].size == 0
    assert members["dev-null"].ischr() and members["dev-null"].devminor == 3
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members.values() for k in m.pax_headers)
    # Applied again, the entries become overlay whiteouts once more.
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(blob), out)
    gone = os.lstat(out / "etc" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(out / "var" / "cache", "trusted.overlay.opaque") == b"y"


def test_symlinks_to_host_directories_are_written_as_links_never_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    os.symlink("/etc", src / "escape")
    os.symlink(str(tmp_path), src / "sub" / "up")
    blob, _ = _write(write_tree, src)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"escape", "sub", "sub/up"}
    assert members["escape"].issym() and members["escape"].linkname == "/etc"
