"""Garbage collection keeps roots, blobs held by live leases (of any process) and in-flight ingests."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from berth.content import BlobStore
from berth.errors import Conflict, InvalidArgument
from berth.oci.digest import Digest
from berth.util.locks import file_lock


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> BlobStore:
    return BlobStore(tmp_path, clock=clock)


def test_gc_removes_blobs_that_are_not_roots_and_counts_their_bytes(store: BlobStore) -> None:
    keep = store.put_bytes(b"referenced by an image")
    drop1 = store.put_bytes(b"x" * 100)
    drop2 = store.put_bytes(b"y" * 50)
    result = store.gc([keep])
    assert set(result.removed) == {drop1, drop2} and result.bytes == 150
    assert list(store.walk()) == [keep]
    assert store.gc([keep]).removed == ()


def test_a_leased_blob_survives_gc_until_the_lease_is_released(store: BlobStore) -> None:
    with store.lease("pull-busybox") as lease:
        digest = store.put_bytes(b"layer being pulled", lease=lease)
        assert lease.digests == {digest}
        assert store.gc([]).removed == ()
        assert store.has(digest)
    assert not (store.root / "leases" / "pull-busybox").exists()
    assert store.gc([]).removed == (digest,)


def test_a_lease_covers_a_blob_added_before_it_is_written(store: BlobStore) -> None:
    digest = Digest.of(b"future")
    with store.lease() as lease:
        lease.add(digest)
        store.put_bytes(b"future")
        store.gc([])
        assert store.has(digest)


def test_a_writer_with_a_lease_adds_the_committed_digest(store: BlobStore) -> None:
    with store.lease("build") as lease:
        with store.writer("step-1", lease=lease) as w:
            w.write(b"layer of unknown digest")
            info = w.commit()
        assert info.digest in lease.digests
        store.gc([])
        assert store.has(info.digest)


def test_an_ingest_in_progress_survives_gc_however_old(store: BlobStore, clock: Clock) -> None:
    with store.writer("in-flight", resumable=True) as w:
        w.write(b"half a layer")
        clock.now += 10 * 24 * 3600
        result = store.gc([])
        assert result.ingests_removed == ()
        w.write(b" and the rest")
        digest = w.commit().digest
    assert store.read_bytes(digest) == b"half a layer and the rest"


def test_gc_removes_only_stale_abandoned_partials(store: BlobStore, clock: Clock) -> None:
    with store.writer("old", resumable=True) as w:
        w.write(b"abandoned")
    os.utime(store.root / "ingest" / "old", (clock.now - 3600, clock.now - 3600))
    with store.writer("young", resumable=True) as w:
        w.write(b"paused upload")
    result = store.gc([], stale_after=1800)
    assert result.ingests_removed == ("old",)
    assert os.listdir(store.root / "ingest") == ["young"]


def test_gc_removes_a_partial_left_linked_to_a_committed_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"committed")
    os.link(store.path(digest), store.root / "ingest" / "leftover")
    result = store.gc([digest])
    assert result.ingests_removed == ("leftover",) and store.has(digest)


def test_lease_names_are_exclusive_and_checked(store: BlobStore) -> None:
    with store.lease("one"):
        with pytest.raises(Conflict):
            store.lease("one")
    with store.lease("one"):
        pass
    for bad in ("", "../x", "a/b", ".dot"):
        with pytest.raises(InvalidArgument):
            store.lease(bad)


def test_a_released_lease_refuses_new_digests(store: BlobStore) -> None:
    lease = store.lease()
    lease.release()
    with pytest.raises(Conflict):
        lease.add(Digest.of(b"x"))


def _hold_lease(root: str, digest: str, ready: object, stop: object) -> None:
    store = BlobStore(Path(root))
    lease = store.lease("other-process")
    lease.add(Digest.parse(digest))
    ready.set()  # type: ignore[attr-defined]
    if stop is None:
        os._exit(0)  # dies without releasing: the kernel drops its flock, the file stays
    stop.wait(30)  # type: ignore[attr-defined]
    lease.release()


def test_a_live_lease_of_another_process_protects_its_blobs(store: BlobStore) -> None:
    digest = store.put_bytes(b"held elsewhere")
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lease, args=(str(store.root), str(digest), ready, stop))
    proc.start()
    try:
        assert ready.wait(10)
        result = store.gc([])
        assert result.removed == () and result.leases_expired == ()
    finally:
        stop.set()
        proc.join(10)
    assert proc.exitcode == 0
    assert store.gc([]).removed == (digest,)


def test_the_lease_of_a_dead_process_is_expired_by_gc(store: BlobStore) -> None:
    digest = store.put_bytes(b"held by a crashed pull")
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lease, args=(str(store.root), str(digest), ready, None))
    proc.start()
    proc.join(10)
    assert (store.root / "leases" / "other-process").exists()
    result = store.gc([])
    assert result.leases_expired == ("other-process",)
    assert result.removed == (digest,)
    assert os.listdir(store.root / "leases") == []


def test_a_lease_add_waits_for_a_running_gc(store: BlobStore) -> None:
    lease = store.lease()
    done = threading.Event()

    def add() -> None:
        lease.add(Digest.of(b"z"))
        done.set()

    with file_lock(store.root / "gc.lock"):
        t = threading.Thread(target=add)
        t.start()
        assert not done.wait(0.3)
    t.join(10)
    assert done.is_set()
    lease.release()


def _slow_leased_ingest(root: str, data: bytes, started: object, committed: object, stop: object) -> None:
    store = BlobStore(Path(root))
    with store.lease("slow-pull") as lease:
        with store.writer("slow", Digest.of(data), len(data), lease=lease) as w:
            for i in range(0, len(data), 4096):
                w.write(data[i:i + 4096])
                if i == 0:
                    started.set()  # type: ignore[attr-defined]
                time.sleep(0.002)
            w.commit()
        # keep holding the lease after the commit, as a pull does until the image is tagged
        committed.set()  # type: ignore[attr-defined]
        stop.wait(30)  # type: ignore[attr-defined]


def test_gc_running_concurrently_spares_an_ingest_in_progress_and_a_leased_blob(store: BlobStore,
                                                                                  clock: Clock) -> None:
    data = os.urandom(400 << 10)
    leased_elsewhere = store.put_bytes(b"leased by this test")
    ctx = multiprocessing.get_context("fork")
    started, committed, stop = ctx.Event(), ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_slow_leased_ingest, args=(str(store.root), data, started, committed, stop))
    clock.now += 10 * 24 * 3600  # every partial is "stale" by age: only the flock protects it
    with store.lease("test") as lease:
        lease.add(leased_elsewhere)
        proc.start()
        try:
            assert started.wait(10)
            runs = 0
            while not committed.is_set() and proc.is_alive():
                result = store.gc([])
                assert result.removed == () and result.ingests_removed == ()
                runs += 1
            assert store.gc([]).removed == ()  # the committed blob, still leased by the other process
            assert store.read_bytes(Digest.of(data), limit=len(data)) == data
        finally:
            stop.set()
            proc.join(30)
        assert proc.exitcode == 0 and runs > 5, runs
        assert store.has(leased_elsewhere)
        assert store.check() == []
    assert store.gc([]).removed == tuple(sorted([leased_elsewhere, Digest.of(data)]))


def test_gc_leaves_alone_what_is_not_a_lease_file(store: BlobStore) -> None:
    (store.root / "leases" / "a-dir").mkdir()
    os.symlink("/etc/passwd", store.root / "leases" / "a-link")
    digest = store.put_bytes(b"unheld")
    assert store.gc([]).removed == (digest,)
    assert sorted(os.listdir(store.root / "leases")) == ["a-dir", "a-link"]
    assert os.path.exists("/etc/passwd")
