"""The extractor against hostile layers: nothing outside the target changes, ever.

Each test crafts a layer with tarfile's writer, applies it to tmp_path/root, and compares a
fingerprint of everything else in tmp_path (a canary tree and a victim file beside the root)
before and after.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import Corrupt, UnsafePath
from berth.snapshots.apply import ApplyResult, apply_layer
from tests.snapshots.layers import E, d, f, fingerprint, hard, sym, tar_bytes

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod)")


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        (tmp / "canary" / "sub").mkdir(parents=True)
        (tmp / "canary" / "a.txt").write_bytes(b"canary\n")
        (tmp / "canary" / "sub" / "b").write_bytes(b"b" * 100)
        (tmp / "victim").write_bytes(b"victim\n")
        (tmp / "x").write_bytes(b"sibling x\n")
        self.before = self.outside()

    def outside(self) -> dict[str, tuple[object, ...]]:
        return fingerprint(self.tmp, skip=self.root, dir_mtimes=True)

    def apply(self, entries: list[E]) -> ApplyResult:
        return apply_layer(io.BytesIO(tar_bytes(entries)), self.root, label="test-layer")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path)
    yield sandbox
    assert sandbox.outside() == sandbox.before, "something outside the target root changed"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/../x", "./../x", "a/b/../../../x", "../../../../../etc/x"])
def test_a_name_climbing_above_the_root_is_refused(box: Sandbox, name: str) -> None:
    with pytest.raises(UnsafePath, match="path escapes rootfs"):
        box.apply([f("ok", b"1"), f(name, b"evil")])


def test_dotdot_that_stays_inside_is_cleaned_lexically(box: Sandbox) -> None:
    box.apply([f("a/../b", b"in")])
    assert (box.root / "b").read_bytes() == b"in"
    assert not (box.root / "a").exists()


def test_an_absolute_name_lands_inside_the_root(box: Sandbox) -> None:
    box.apply([f("/etc/x", b"abs")])
    assert (box.root / "etc" / "x").read_bytes() == b"abs"


@pytest.mark.parametrize("target", ["/", "../..", "/..", "../../..", "/../../"])
def test_a_file_written_through_an_escaping_symlink_lands_inside_the_root(box: Sandbox, target: str) -> None:
    box.apply([sym("d", target), f("d/x", b"through"), f("d/victim", b"overwritten?")])
    assert (box.root / "x").read_bytes() == b"through"
    assert (box.root / "victim").read_bytes() == b"overwritten?"
    assert os.readlink(box.root / "d") == target


def test_a_symlink_chain_ending_outside_is_resolved_inside(box: Sandbox) -> None:
    box.apply([sym("a", "b"), sym("b", "c/../../.."), d("c"), sym("e", "/a"), f("e/y", b"chain")])
    assert (box.root / "y").read_bytes() == b"chain"


def test_a_symlink_to_an_absolute_host_path_is_not_followed_out(box: Sandbox) -> None:
    host = str(box.tmp / "canary")
    with pytest.raises(Corrupt, match="evil/file"):
        box.apply([sym("evil", host), f("evil/file", b"x")])
    assert not (box.tmp / "canary" / "file").exists()


def test_a_file_replacing_a_symlink_never_writes_through_it(box: Sandbox) -> None:
    box.apply([sym("f", "../victim"), f("f", b"replaced")])
    assert (box.root / "f").read_bytes() == b"replaced"
    assert not (box.root / "f").is_symlink()


def test_a_directory_entry_over_an_escaping_symlink_replaces_the_link(box: Sandbox) -> None:
    box.apply([sym("d", "../canary"), d("d", mode=0o700), f("d/new", b"n")])
    assert (box.root / "d").is_dir() and not (box.root / "d").is_symlink()
    assert stat.S_IMODE(os.lstat(box.root / "d").st_mode) == 0o700


@pytest.mark.parametrize("target", ["../victim", "/../victim", "a/../../victim"])
def test_a_hardlink_to_outside_the_root_is_refused(box: Sandbox, target: str) -> None:
    with pytest.raises(UnsafePath, match="path escapes rootfs"):
        box.apply([hard("h", target)])


def test_a_hardlink_through_an_escaping_symlink_finds_nothing_outside(box: Sandbox) -> None:
    with pytest.raises(Corrupt, match="not in this layer"):
        box.apply([sym("up", "../.."), hard("h", "up/victim")])


def test_a_hardlink_to_a_missing_entry_is_refused(box: Sandbox) -> None:
    with pytest.raises(Corrupt, match="not in this layer"):
        box.apply([f("present"), hard("h", "absent")])


def test_a_hardlink_to_an_entry_of_the_layer_shares_its_inode(box: Sandbox) -> None:
    box.apply([f("usr/bin/perl", b"#!perl", mode=0o755), hard("usr/bin/perlbug", "usr/bin/perl"),
               hard("/usr/bin/perlthanks", "/usr/bin/perl")])
    a, b, c = (os.lstat(box.root / "usr/bin" / n) for n in ("perl", "perlbug", "perlthanks"))
    assert a.st_ino == b.st_ino == c.st_ino and a.st_nlink == 3


def test_a_hardlink_to_a_symlink_links_the_symlink_itself(box: Sandbox) -> None:
    box.apply([sym("s", "../victim"), hard("h", "s")])
    assert os.readlink(box.root / "h") == "../victim"
    assert os.lstat(box.root / "h").st_ino == os.lstat(box.root / "s").st_ino


@pytest.mark.parametrize("name", [".wh.", "dir/.wh..", ".wh...", "a/.wh.b/c", "/.wh."])
def test_a_malformed_whiteout_is_refused(box: Sandbox, name: str) -> None:
    with pytest.raises(Corrupt, match="invalid whiteout"):
        box.apply([d("dir"), f(name)])


@ROOT_ONLY
def test_device_nodes_are_created_inside_the_root(box: Sandbox) -> None:
    box.apply([E("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
               E("dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9, gid=6)])
    null = os.lstat(box.root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(box.root / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 9) and loop.st_gid == 6


@ROOT_ONLY
def test_a_device_node_named_outside_the_root_is_refused(box: Sandbox) -> None:
    with pytest.raises(UnsafePath):
        box.apply([E("/../dev-outside", tarfile.CHRTYPE, devmajor=1, devminor=3)])
    assert not (box.tmp / "dev-outside").exists()


def test_an_entry_under_a_regular_file_is_refused(box: Sandbox) -> None:
    with pytest.raises(Corrupt, match="a/b"):
        box.apply([f("a", b"file"), f("a/b", b"child")])


def test_an_entry_replacing_the_root_is_refused(box: Sandbox) -> None:
    with pytest.raises(Corrupt, match="root directory"):
        box.apply([sym(".", "/")])


def test_a_symlinked_directory_replaced_by_a_real_one_receives_the_later_entries(box: Sandbox) -> None:
    box.apply([d("real"), sym("a", "real"), f("a/first", b"1"), d("a"), f("a/second", b"2"),
               sym("b", "real"), f("b/third", b"3"), f("b", b"now a file")])
    assert sorted(os.listdir(box.root / "real")) == ["first", "third"]
    assert os.listdir(box.root / "a") == ["second"] and not (box.root / "a").is_symlink()
    assert (box.root / "b").read_bytes() == b"now a file"


def test_an_entry_under_a_symlink_replaced_by_a_file_is_refused(box: Sandbox) -> None:
    with pytest.raises(Corrupt, match="b/again"):
        box.apply([d("real"), sym("b", "real"), f("b/x", b"1"), f("b", b"file"), f("b/again", b"2")])


def test_a_whiteout_does_not_remove_an_entry_of_its_own_layer(box: Sandbox) -> None:
    box.apply([f("keep", b"mine"), f(".wh.keep")])
    assert (box.root / "keep").read_bytes() == b"mine"


@ROOT_ONLY
@pytest.mark.parametrize("link", ["/", "../..", "../../canary", "/nonexistent"])
@pytest.mark.parametrize("marker", [".wh.a.txt", ".wh..wh..opq"])
def test_whiteouts_under_an_escaping_symlink_stay_inside(box: Sandbox, link: str, marker: str) -> None:
    if link in ("../../canary", "/nonexistent"):       # resolved inside the root: nothing there
        with pytest.raises(Corrupt):
            box.apply([sym("d", link), f(f"d/{marker}")])
        return
    box.apply([sym("d", link), f(f"d/{marker}")])
    if marker == ".wh.a.txt":
        assert os.lstat(box.root / "a.txt").st_rdev == 0 and stat.S_ISCHR(os.lstat(box.root / "a.txt").st_mode)
    else:
        assert os.getxattr(box.root, "trusted.overlay.opaque") == b"y"


def test_a_whiteout_naming_a_parent_outside_is_refused(box: Sandbox) -> None:
    with pytest.raises(UnsafePath):
        box.apply([f("../.wh.victim")])
