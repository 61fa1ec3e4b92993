"""The snapshotter's bookkeeping: unpack once by chain id, verify, leave nothing on failure."""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from berth.errors import Conflict, Corrupt, DigestMismatch, InvalidArgument, LimitExceeded, NotFound
from berth.oci.digest import Digest, chain_ids
from berth.snapshots.apply import Limits
from berth.snapshots.mount import PAGE_LIMIT
from berth.snapshots.store import Snapshotter
from tests.snapshots.layers import d, f, gz, tar_bytes, zst

BASE = tar_bytes([d("bin"), f("bin/sh", b"#!shell", mode=0o755), f("etc/os-release", b"ID=berth\n")])
TOP = tar_bytes([f("etc/motd", b"hello\n"), f(".wh.bin")])


def _ids(*layers: bytes) -> tuple[list[Digest], list[Digest]]:
    diffs = [Digest.of(layer) for layer in layers]
    return diffs, chain_ids(diffs)


def _leftovers(store: Snapshotter) -> list[str]:
    return sorted(e for e in os.listdir(store.root) if e not in ("layers", "active", "locks", "lock"))


@pytest.fixture
def store(tmp_path: Path) -> Snapshotter:
    return Snapshotter(tmp_path / "snapshots", durable=False)


def test_a_layer_is_unpacked_under_its_chain_id_and_found_again(store: Snapshotter) -> None:
    (d0, d1), (c0, c1) = _ids(BASE, TOP)
    base = store.unpack(c0, None, io.BytesIO(gz(BASE)), None, d0)
    top = store.unpack(c1, c0, io.BytesIO(zst(TOP)), None, d1)
    assert store.has(c0) and store.has(c1) and store.get(c1) == top
    assert (top.parent, top.diff_id, top.size, top.entries) == (c0, d1, len(TOP), 2)
    assert store.lowerdirs(c1) == [store.root / top.id / "fs", store.root / base.id / "fs"]
    assert (store.lowerdirs(c0)[0] / "bin" / "sh").read_bytes() == b"#!shell"
    again = store.unpack(c1, c0, io.BytesIO(b"not even read"), None, d1)
    assert again == top
    assert store.check() == [] and _leftovers(store) == sorted([base.id, top.id])
    assert oct(os.stat(store.root).st_mode & 0o777) == "0o700"


def test_a_wrong_diff_id_is_a_digest_mismatch_and_nothing_is_kept(store: Snapshotter) -> None:
    (d0,), (c0,) = _ids(BASE)
    wrong = tar_bytes([f("other")])
    with pytest.raises(DigestMismatch, match=str(d0)):
        store.unpack(c0, None, io.BytesIO(wrong), None, d0)
    assert not store.has(c0) and _leftovers(store) == [] and store.check() == []
    store.unpack(c0, None, io.BytesIO(BASE), None, d0)
    assert store.has(c0)


@pytest.mark.parametrize("bad", [lambda b: gz(b)[:-40], lambda b: zst(b)[:-6],
                                 lambda b: b[:512] + b"\xee" * 512 + b[1024:]])
def test_a_corrupt_layer_leaves_nothing_and_a_retry_succeeds(store: Snapshotter, bad: object) -> None:
    (d0,), (c0,) = _ids(BASE)
    with pytest.raises(Corrupt, match=str(d0)):
        store.unpack(c0, None, io.BytesIO(bad(BASE)), None, d0)  # type: ignore[operator]
    assert not store.has(c0) and _leftovers(store) == [] and store.check() == []
    assert store.unpack(c0, None, io.BytesIO(gz(BASE)), None, d0).entries == 3


def test_limits_apply_through_the_store(tmp_path: Path) -> None:
    store = Snapshotter(tmp_path / "s", limits=Limits(max_entries=2), durable=False)
    (d0,), (c0,) = _ids(BASE)
    with pytest.raises(LimitExceeded, match="limit of 2 entries"):
        store.unpack(c0, None, io.BytesIO(BASE), None, d0)
    assert _leftovers(store) == []


def test_a_chain_id_that_does_not_follow_from_parent_and_diff_id_is_refused(store: Snapshotter) -> None:
    (d0, d1), (c0, c1) = _ids(BASE, TOP)
    with pytest.raises(InvalidArgument, match="does not follow"):
        store.unpack(c1, None, io.BytesIO(TOP), None, d1)
    with pytest.raises(NotFound, match="unpack it first"):
        store.unpack(c1, c0, io.BytesIO(TOP), None, d1)


def _unpack_in_child(root: str, conn: object) -> None:
    (d0,), (c0,) = _ids(BASE)
    info = Snapshotter(Path(root), durable=False).unpack(c0, None, io.BytesIO(gz(BASE)), None, d0)
    conn.send(info.id)  # type: ignore[attr-defined]


def test_five_processes_unpacking_the_same_layer_end_with_one_copy(store: Snapshotter) -> None:
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(5)]
    procs = [ctx.Process(target=_unpack_in_child, args=(str(store.root), w)) for _, w in pipes]
    for p in procs:
        p.start()
    try:
        ids = {r.recv() for r, _ in pipes}
    finally:
        for p in procs:
            p.join(30)
    assert [p.exitcode for p in procs] == [0] * 5
    assert len(ids) == 1 and _leftovers(store) == sorted(ids)


def test_five_threads_unpacking_the_same_layer_end_with_one_copy(store: Snapshotter) -> None:
    (d0,), (c0,) = _ids(BASE)
    with ThreadPoolExecutor(5) as pool:
        infos = list(pool.map(lambda _: store.unpack(c0, None, io.BytesIO(zst(BASE)), None, d0), range(5)))
    assert len({i.id for i in infos}) == 1 and len(_leftovers(store)) == 1


def test_a_layer_in_use_cannot_be_removed(store: Snapshotter) -> None:
    (d0, d1), (c0, c1) = _ids(BASE, TOP)
    store.unpack(c0, None, io.BytesIO(BASE), None, d0)
    store.unpack(c1, c0, io.BytesIO(TOP), None, d1)
    store.prepare("ctr1", c1)
    with pytest.raises(Conflict, match="parent of layer"):
        store.remove_layer(c0)
    with pytest.raises(Conflict, match="ctr1"):
        store.remove_layer(c1)
    store.remove("ctr1")
    store.remove_layer(c1)
    store.remove_layer(c0)
    assert _leftovers(store) == [] and store.layers() == []
    with pytest.raises(NotFound):
        store.remove_layer(c0)


def test_prepare_checks_its_key_and_parent(store: Snapshotter) -> None:
    (_,), (c0,) = _ids(BASE)
    with pytest.raises(InvalidArgument):
        store.prepare("../evil", None)
    with pytest.raises(NotFound):
        store.prepare("ctr", c0)
    snap = store.prepare("ctr", None)
    with pytest.raises(Conflict):
        store.prepare("ctr", None)
    assert snap.upper.is_dir() and snap.work.is_dir() and oct(snap.upper.stat().st_mode & 0o777) == "0o755"


def test_a_snapshot_without_layers_mounts_as_a_plain_directory(store: Snapshotter) -> None:
    snap = store.prepare("scratch", None)
    [m] = store.mounts("scratch")
    assert (m.type, m.source, m.cwd) == ("bind", f"{snap.id}/fs", store.root)
    assert m.absolute().source == str(snap.upper)


def test_mount_options_of_120_layers_fit_in_a_page(store: Snapshotter) -> None:
    layers = [tar_bytes([f(f"layer{i}", str(i).encode())]) for i in range(120)]
    diffs, chains = _ids(*layers)
    for i, (layer, diff, chain) in enumerate(zip(layers, diffs, chains, strict=True)):
        store.unpack(chain, chains[i - 1] if i else None, io.BytesIO(layer), None, diff)
    snap = store.prepare("tall", chains[-1])
    [m] = store.mounts("tall")
    assert m.type == "overlay" and m.cwd == store.root
    assert len(m.data()) < PAGE_LIMIT
    lower = m.options[0].removeprefix("lowerdir=").split(":")
    assert len(lower) == 120 and lower[0] == f"{store.get(chains[-1]).id}/fs"
    assert f"upperdir={snap.id}/fs" in m.options
    assert len(m.absolute().data()) > len(m.data())
    assert all(os.path.isdir(store.root / p) for p in lower)


def test_check_reports_and_cleanup_removes_crash_leftovers(store: Snapshotter) -> None:
    (d0,), (c0,) = _ids(BASE)
    info = store.unpack(c0, None, io.BytesIO(BASE), None, d0)
    (store.root / ".tmp-crashed" / "fs").mkdir(parents=True)
    (store.root / "999").mkdir()
    problems = store.check()
    assert any(".tmp-crashed" in p for p in problems) and any("999" in p for p in problems)
    assert sorted(store.cleanup()) == [".tmp-crashed", "999"]
    assert store.check() == [] and store.has(c0)
    # A layer whose directory vanished is reported, then forgotten so it can be unpacked again.
    os.rename(store.root / info.id, store.root / "moved-away")
    assert any("missing" in p for p in store.check())
    store.cleanup()
    assert not store.has(c0)
    store.unpack(c0, None, io.BytesIO(BASE), None, d0)


def test_usage_counts_blocks_and_inodes_once_per_hardlink(store: Snapshotter) -> None:
    layer = tar_bytes([f("a", b"x" * 100_000), f("b", b"y")])
    (d0,), (c0,) = _ids(layer)
    store.unpack(c0, None, io.BytesIO(layer), None, d0)
    usage = store.usage(c0)
    assert usage.inodes == 3 and usage.size >= 100_000
    snap = store.prepare("u", c0)
    (snap.upper / "new").write_bytes(b"z" * 10_000)
    os.link(snap.upper / "new", snap.upper / "same")
    assert store.usage("u").inodes == 2


def test_preparing_a_container_does_not_wait_for_an_unpack_in_progress(store: Snapshotter) -> None:
    (d0,), (c0,) = _ids(BASE)
    r, w = os.pipe()
    with ThreadPoolExecutor(1) as pool, os.fdopen(r, "rb") as reader, os.fdopen(w, "wb") as writer:
        pending = pool.submit(store.unpack, c0, None, reader, None, d0)
        writer.write(BASE[:1024])
        writer.flush()
        for _ in range(500):
            if any(e.startswith(".tmp-") for e in os.listdir(store.root)):
                break
            time.sleep(0.01)
        started = time.monotonic()
        store.prepare("quick", None)                 # the unpack still waits for the rest of its stream
        assert time.monotonic() - started < 2 and not pending.done()
        writer.write(BASE[1024:])
        writer.close()
        assert pending.result(30).chain_id == c0


def test_cleanup_forgets_lock_files_of_removed_keys(store: Snapshotter) -> None:
    store.prepare("gone", None)
    store.remove("gone")
    assert "key-gone" in os.listdir(store.root / "locks")
    store.cleanup()
    assert os.listdir(store.root / "locks") == []


def test_a_durable_store_syncs_and_commits_the_same_way(tmp_path: Path) -> None:
    store = Snapshotter(tmp_path / "durable")
    (d0,), (c0,) = _ids(BASE)
    info = store.unpack(c0, None, io.BytesIO(gz(BASE)), None, d0)
    assert store.get(c0) == info and store.check() == []


def test_an_unreadable_record_is_corrupt_reported_and_set_aside(store: Snapshotter) -> None:
    (d0,), (c0,) = _ids(BASE)
    info = store.unpack(c0, None, io.BytesIO(BASE), None, d0)
    store.prepare("ctr", c0)
    (store.root / "layers" / f"{c0.hex}.json").write_text('{"chain_id": "sha256:nope"')
    (store.root / "active" / "other.json").write_text("[]")
    with pytest.raises(Corrupt, match="unreadable"):
        store.get(c0)
    problems = store.check()
    assert len(problems) == 2 and all("unreadable" in p for p in problems)
    removed = store.cleanup()
    assert f"layers/{c0.hex}.json" in removed and "active/other.json" in removed
    assert (store.root / "layers" / f"{c0.hex}.json.corrupt").exists()
    assert not store.has(c0) and info.id in removed        # its directory is garbage now
    # The container snapshot record was fine, but its parent layer is gone: reported, not hidden.
    assert store.check() == [f"snapshot 'ctr': parent layer {c0} is missing"]
