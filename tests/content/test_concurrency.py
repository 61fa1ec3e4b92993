"""Many writers of one blob at once, in threads and in processes, end with one verified copy."""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from berth.content import BlobStore
from berth.oci.digest import Digest

DATA = os.urandom((2 << 20) + 12345)
DIGEST = Digest.of(DATA)
WRITERS = 5


class SlowStream(io.RawIOBase):
    """Hands out data in small pieces, so that concurrent writers really overlap."""

    def __init__(self, data: bytes, piece: int = 64 << 10) -> None:
        self._data, self._pos, self._piece = data, 0, piece

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self._piece, len(self._data) - self._pos)
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def _ingest(root: str, shared_ref: bool, index: int, barrier: threading.Barrier | None = None) -> str:
    store = BlobStore(Path(root))
    if barrier is not None:
        barrier.wait()
    ref = None if shared_ref else f"writer-{index}"
    info = store.ingest(SlowStream(DATA), expected=DIGEST, expected_size=len(DATA), ref=ref)  # type: ignore[arg-type]
    return str(info.digest)


def _ingest_in_process(root: str, shared_ref: bool, index: int, start: object, out: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    out.put(_ingest(root, shared_ref, index))  # type: ignore[attr-defined]


def _assert_one_copy(store: BlobStore) -> None:
    assert os.listdir(store.root / "blobs" / "sha256") == [DIGEST.hex]
    assert os.listdir(store.root / "ingest") == []
    assert store.read_bytes(DIGEST, limit=len(DATA)) == DATA
    assert store.check() == []


@pytest.mark.parametrize("shared_ref", [True, False], ids=["one-ref", "own-refs"])
def test_concurrent_thread_writers_of_one_blob_leave_one_copy(tmp_path: Path, shared_ref: bool) -> None:
    store = BlobStore(tmp_path)
    barrier = threading.Barrier(WRITERS)
    results: list[str] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results.append(_ingest(str(tmp_path), shared_ref, i, barrier))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert results == [str(DIGEST)] * WRITERS
    _assert_one_copy(store)


@pytest.mark.parametrize("shared_ref", [True, False], ids=["one-ref", "own-refs"])
def test_concurrent_process_writers_of_one_blob_leave_one_copy(tmp_path: Path, shared_ref: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_ingest_in_process, args=(str(tmp_path), shared_ref, i, start, out))
             for i in range(WRITERS)]
    for p in procs:
        p.start()
    try:
        start.set()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in procs] == [0] * WRITERS
    assert results == [str(DIGEST)] * WRITERS
    _assert_one_copy(BlobStore(tmp_path))


def test_a_second_writer_of_a_ref_waits_and_then_finds_the_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.writer(str(DIGEST), DIGEST, len(DATA))
    first.write(DATA[:1000])
    seen: list[bool] = []

    def second() -> None:
        with store.writer(str(DIGEST), DIGEST, len(DATA)) as w:
            seen.append(w.exists)

    t = threading.Thread(target=second)
    t.start()
    t.join(0.3)
    assert t.is_alive()  # waiting on the first writer's lock
    first.write(DATA[1000:])
    first.commit()
    first.close()
    t.join(10)
    assert seen == [True]
    _assert_one_copy(store)
