"""Layers as overlayfs sees them: real mounts of the snapshotter's directories (root only)."""

from __future__ import annotations

import io
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from berth.errors import NotFound, RuntimeFailure, Unavailable
from berth.oci.digest import Digest, chain_ids
from berth.snapshots.diff import write_diff
from berth.snapshots.store import Snapshotter
from berth.util import linux
from tests.snapshots.layers import E, d, f, fingerprint, hard, sym, tar_bytes

pytestmark = pytest.mark.root


@pytest.fixture
def store(tmp_path: Path) -> Snapshotter:
    return Snapshotter(tmp_path / "snapshots", durable=False)


def _stack(store: Snapshotter, *layers: list[E]) -> list[Digest]:
    blobs = [tar_bytes(entries) for entries in layers]
    diffs = [Digest.of(b) for b in blobs]
    chains = chain_ids(diffs)
    for i, blob in enumerate(blobs):
        store.unpack(chains[i], chains[i - 1] if i else None, io.BytesIO(blob), None, diffs[i])
    return chains


@contextmanager
def mounted(store: Snapshotter, key: str, parent: Digest | None, target: Path) -> Iterator[Path]:
    store.prepare(key, parent)
    target.mkdir(exist_ok=True)
    store.mount(key, target)
    try:
        yield target
    finally:
        linux.umount(str(target), linux.MNT_DETACH)


def test_a_whiteout_hides_the_lower_entry_only_in_the_merged_view(store: Snapshotter, tmp_path: Path) -> None:
    chains = _stack(store, [d("etc"), f("etc/passwd", b"root"), f("etc/group", b"g"), d("opt"), f("opt/x")],
                    [f("etc/.wh.passwd"), f(".wh.opt")])
    with mounted(store, "c", chains[-1], tmp_path / "m") as view:
        assert not (view / "etc" / "passwd").exists() and (view / "etc" / "group").read_bytes() == b"g"
        assert not (view / "opt").exists()
        assert sorted(os.listdir(view)) == ["etc"]
    lower = store.lowerdirs(chains[0])[0]
    assert (lower / "etc" / "passwd").read_bytes() == b"root"      # the lower layer itself is intact
    wh = os.lstat(store.lowerdirs(chains[-1])[0] / "etc" / "passwd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0


@pytest.mark.parametrize("order", ["opaque-first", "opaque-last", "opaque-between"])
def test_an_opaque_directory_hides_all_lower_contents_whatever_its_place_in_the_tar(
        store: Snapshotter, tmp_path: Path, order: str) -> None:
    upper = [d("data"), f("data/new1", b"1"), f("data/new2", b"2")]
    opq = f("data/.wh..wh..opq")
    upper.insert({"opaque-first": 0, "opaque-last": 3, "opaque-between": 2}[order], opq)
    chains = _stack(store, [d("data"), f("data/old", b"o"), d("data/olddir"), f("data/olddir/x")], upper)
    with mounted(store, "c", chains[-1], tmp_path / "m") as view:
        assert sorted(os.listdir(view / "data")) == ["new1", "new2"]


def test_a_whiteout_and_a_new_directory_of_the_same_name_hide_the_lower_contents(
        store: Snapshotter, tmp_path: Path) -> None:
    chains = _stack(store, [d("srv"), f("srv/old")], [f(".wh.srv"), d("srv"), f("srv/new")])
    with mounted(store, "c", chains[-1], tmp_path / "m") as view:
        assert os.listdir(view / "srv") == ["new"]


def test_a_symlink_to_the_root_in_one_layer_and_files_through_it_in_the_next_stay_inside(
        store: Snapshotter, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_bytes(b"keep")
    before = fingerprint(canary, dir_mtimes=True)
    chains = _stack(store, [sym("d", "/"), sym("up", "../../.."), sym("abs", str(canary))],
                    [f("d/x", b"via d"), f("up/y", b"via up"), f("abs/z", b"via abs")])
    with mounted(store, "c", chains[-1], tmp_path / "m") as view:
        # In its own directory the second layer has real directories d/, up/, abs/: they win.
        assert (view / "d" / "x").read_bytes() == b"via d" and not (view / "d").is_symlink()
        assert (view / "up" / "y").read_bytes() == b"via up"
        assert (view / "abs" / "z").read_bytes() == b"via abs"
    assert fingerprint(canary, dir_mtimes=True) == before
    assert sorted(os.listdir(tmp_path)) == ["canary", "m", "snapshots"]


@pytest.mark.slow
def test_120_layers_mount_as_one_overlay(store: Snapshotter, tmp_path: Path) -> None:
    layers = [[f(f"layer{i:03}", str(i).encode()), f("shared", str(i).encode())] for i in range(120)]
    chains = _stack(store, *layers)
    with mounted(store, "tall", chains[-1], tmp_path / "m") as view:
        assert (view / "layer000").read_bytes() == b"0"
        assert (view / "layer119").read_bytes() == b"119"
        assert (view / "shared").read_bytes() == b"119"
        assert len(os.listdir(view)) == 121


def test_a_snapshot_without_layers_is_a_writable_plain_directory(store: Snapshotter, tmp_path: Path) -> None:
    with mounted(store, "scratch", None, tmp_path / "m") as view:
        (view / "hello").write_bytes(b"hi")
    assert (store.active("scratch").upper / "hello").read_bytes() == b"hi"


def test_round_trip_the_diff_of_a_container_reproduces_its_merged_view(store: Snapshotter, tmp_path: Path) -> None:
    base = [d("etc"), f("etc/keep", b"k"), f("etc/change", b"old"), f("etc/remove", b"r"),
            d("var"), d("var/lib"), f("var/lib/a", b"a"), d("var/lib/sub"), f("var/lib/sub/b", b"b"),
            f("bin/tool", b"tool", mode=0o755), hard("bin/tool2", "bin/tool"), sym("bin/sh", "tool")]
    [c0] = _stack(store, base)
    with mounted(store, "ctr", c0, tmp_path / "m") as view:
        (view / "etc" / "change").write_bytes(b"new contents")
        os.chmod(view / "etc" / "change", 0o600)
        (view / "etc" / "remove").unlink()
        (view / "etc" / "added").write_bytes(b"added")
        shutil.rmtree(view / "var" / "lib")
        (view / "var" / "lib").mkdir()
        (view / "var" / "lib" / "fresh").write_bytes(b"fresh")
        os.setxattr(view / "etc" / "added", "user.note", b"\x00\xffbinary")
        os.link(view / "etc" / "added", view / "etc" / "added-link")
        os.mkfifo(view / "fifo")
        os.symlink("/etc/added", view / "abs-link")
        os.chown(view / "etc" / "keep", 123, 456)
        merged = fingerprint(view)
    upper = store.active("ctr").upper
    diff_tar = tmp_path / "diff.tar"
    with open(diff_tar, "wb") as out:
        written = write_diff(upper, out)
    blob = diff_tar.read_bytes()
    assert written.diff_id == Digest.of(blob) and written.size == len(blob)
    assert b".wh.remove" in blob and b"var/lib/.wh..wh..opq" in blob
    c1 = chain_ids([Digest.of(tar_bytes(base)), written.diff_id])[1]
    store.unpack(c1, c0, io.BytesIO(blob), None, written.diff_id)
    with mounted(store, "check", c1, tmp_path / "m2") as view2:
        again = fingerprint(view2)
    assert again == merged


def test_mounting_leaves_the_process_working_directory_alone(store: Snapshotter, tmp_path: Path) -> None:
    [c0] = _stack(store, [f("a", b"a")])
    cwd = os.getcwd()
    with mounted(store, "c", c0, tmp_path / "m") as view:
        assert os.getcwd() == cwd
        assert (view / "a").read_bytes() == b"a"


def test_a_full_disk_is_unavailable_and_leaves_nothing_behind(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    linux.mount("tmpfs", str(small), "tmpfs", 0, "size=1m")
    try:
        store = Snapshotter(small / "snapshots", durable=False)
        layer = tar_bytes([f("big", os.urandom(2 << 20))])
        diff = Digest.of(layer)
        with pytest.raises(Unavailable, match="no space left"):
            store.unpack(diff, None, io.BytesIO(layer), None, diff)
        assert sorted(os.listdir(store.root)) == ["active", "layers", "lock", "locks"]
        fits = tar_bytes([f("small", b"s" * 1000)])
        store.unpack(Digest.of(fits), None, io.BytesIO(fits), None, Digest.of(fits))
    finally:
        linux.umount(str(small), linux.MNT_DETACH)


def test_the_container_root_keeps_the_owner_and_mode_of_the_image_root(store: Snapshotter, tmp_path: Path) -> None:
    [c0] = _stack(store, [d("./", mode=0o750, uid=7, gid=8), f("a")])
    with mounted(store, "c", c0, tmp_path / "m") as view:
        st = os.stat(view)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 7, 8)


def test_a_committed_container_snapshot_is_the_layer_its_diff_would_unpack_to(
        store: Snapshotter, tmp_path: Path) -> None:
    [c0] = _stack(store, [d("etc"), f("etc/a", b"a"), f("etc/b", b"b"), d("var"), f("var/x")])
    with mounted(store, "build", c0, tmp_path / "m") as view:
        (view / "etc" / "a").unlink()
        (view / "etc" / "c").write_bytes(b"c")
        shutil.rmtree(view / "var")
        (view / "var").mkdir()
    blob = io.BytesIO()
    written = write_diff(store.active("build").upper, blob)
    info = store.commit("build", written)
    assert info.parent == c0 and info.diff_id == written.diff_id and store.check() == []
    with pytest.raises(NotFound):
        store.active("build")
    with mounted(store, "run", info.chain_id, tmp_path / "m1") as view:
        committed = fingerprint(view)
        assert sorted(os.listdir(view / "etc")) == ["b", "c"] and os.listdir(view / "var") == []
    # The same diff unpacked from its tar in another store gives the same view.
    other = Snapshotter(tmp_path / "other", durable=False)
    [o0] = _stack(other, [d("etc"), f("etc/a", b"a"), f("etc/b", b"b"), d("var"), f("var/x")])
    other.unpack(info.chain_id, o0, io.BytesIO(blob.getvalue()), None, written.diff_id)
    with mounted(other, "run", info.chain_id, tmp_path / "m2") as view:
        assert fingerprint(view) == committed
    # Committing a second snapshot with the same content keeps the first layer.
    store.prepare("again", c0)
    again = store.commit("again", written)
    assert again == info and store.check() == []


def test_mount_and_unmount_failures_are_berth_errors(store: Snapshotter, tmp_path: Path) -> None:
    store.prepare("c", None)
    with pytest.raises(RuntimeFailure, match="cannot mount snapshot 'c'"):
        store.mount("c", tmp_path / "missing-target")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotFound, match="nothing is mounted"):
        store.unmount(tmp_path / "plain")
