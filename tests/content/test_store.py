"""The blob store's single-process behaviour: commit verification, reading, resumable ingests, check()."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from berth.content import BlobIngester, BlobReader, BlobStore
from berth.errors import Conflict, Corrupt, DigestMismatch, InvalidArgument, LimitExceeded, NotFound, Unavailable
from berth.oci.digest import Digest


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "content")


def blob_files(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.root / "blobs" / "sha256"))


def ingest_files(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.root / "ingest"))


def test_a_put_blob_reads_back_by_its_digest(store: BlobStore) -> None:
    data = b"hello, berth\n"
    digest = store.put_bytes(data)
    assert digest == Digest.of(data)
    assert store.has(digest) and store.size(digest) == len(data)
    with store.open(digest) as f:
        assert f.read() == data
    assert store.read_bytes(digest, limit=100) == data
    assert store.path(digest) == store.root / "blobs" / "sha256" / digest.hex
    assert store.path(digest).read_bytes() == data
    assert list(store.walk()) == [digest]
    assert ingest_files(store) == []
    assert store.check() == []


def test_a_committed_blob_is_read_only_and_the_empty_blob_works(store: BlobStore) -> None:
    digest = store.put_bytes(b"")
    assert digest == Digest.of(b"") and store.size(digest) == 0
    assert os.stat(store.path(digest)).st_mode & 0o777 == 0o444


def test_the_store_satisfies_its_narrow_protocols(store: BlobStore) -> None:
    reader: BlobReader = store
    ingester: BlobIngester = store
    digest = ingester.put_bytes(b"x")
    assert reader.read_bytes(digest) == b"x"


def test_commit_rejects_a_blob_whose_digest_differs_from_the_expected_one(store: BlobStore) -> None:
    expected = Digest.of(b"what the manifest promised")
    actual = Digest.of(b"what the server sent")
    with pytest.raises(DigestMismatch) as err:
        store.ingest(io.BytesIO(b"what the server sent"), expected=expected)
    assert str(expected) in str(err.value) and str(actual) in str(err.value)
    assert blob_files(store) == [] and ingest_files(store) == []


def test_a_digest_mismatch_drops_even_a_resumable_partial(store: BlobStore) -> None:
    expected = Digest.of(b"good")
    with pytest.raises(DigestMismatch):
        with store.writer("r1", expected, resumable=True) as w:
            w.write(b"evil")
            w.commit()
    assert blob_files(store) == [] and ingest_files(store) == []


def test_put_bytes_rejects_a_wrong_expected_digest(store: BlobStore) -> None:
    with pytest.raises(DigestMismatch):
        store.put_bytes(b"abc", expected=Digest.of(b"abd"))
    assert blob_files(store) == []


@pytest.mark.parametrize("expected_size", [2, 4])
def test_commit_rejects_a_blob_of_the_wrong_size(store: BlobStore, expected_size: int) -> None:
    with pytest.raises(Corrupt) as err:
        store.ingest(io.BytesIO(b"abc"), expected=Digest.of(b"abc"), expected_size=expected_size)
    assert str(expected_size) in str(err.value)
    assert blob_files(store) == [] and ingest_files(store) == []


def test_a_write_past_the_expected_size_is_refused_before_it_lands(store: BlobStore) -> None:
    with store.writer("r", expected_size=3, resumable=True) as w:
        w.write(b"ab")
        with pytest.raises(Corrupt):
            w.write(b"cd")
        assert w.offset == 2
    assert (store.root / "ingest" / "r").read_bytes() == b"ab"


def test_an_existing_blob_is_not_an_error_and_its_stream_is_not_read(store: BlobStore) -> None:
    data = b"x" * 1000
    digest = store.put_bytes(data)
    assert store.put_bytes(data) == digest
    stream = io.BytesIO(data)
    info = store.ingest(stream, expected=digest, expected_size=len(data))
    assert (info.digest, info.size) == (digest, len(data))
    assert stream.tell() == 0
    # without an expected digest the data is hashed, and the second copy is dropped at commit
    info = store.ingest(io.BytesIO(data))
    assert info.digest == digest
    assert blob_files(store) == [digest.hex] and ingest_files(store) == []


def test_a_writer_reports_an_existing_blob_before_anything_is_written(store: BlobStore) -> None:
    digest = store.put_bytes(b"present")
    with store.writer("w", digest, 7) as w:
        assert w.exists
        assert w.commit().digest == digest
    assert ingest_files(store) == []


def test_an_exception_inside_the_writer_leaves_nothing_behind(store: BlobStore) -> None:
    with pytest.raises(RuntimeError):
        with store.writer("w") as w:
            w.write(b"partial")
            raise RuntimeError("connection reset")
    assert blob_files(store) == [] and ingest_files(store) == []


def test_a_resumable_ingest_keeps_its_partial_and_continues_at_its_offset(store: BlobStore) -> None:
    data = os.urandom(3 << 20) + b"tail"
    digest = Digest.of(data)
    with pytest.raises(ConnectionError):
        with store.writer("pull-1", digest, len(data), resumable=True) as w:
            assert w.offset == 0
            w.write(data[: 2 << 20])
            raise ConnectionError("peer went away")
    assert blob_files(store) == [] and ingest_files(store) == ["pull-1"]
    with store.writer("pull-1", digest, len(data), resumable=True) as w:
        assert w.offset == 2 << 20  # the caller asks for Range: bytes=2097152-
        w.write(data[w.offset:])
        info = w.commit()
    assert info.digest == digest and info.size == len(data)
    assert store.read_bytes(digest, limit=len(data)) == data
    assert ingest_files(store) == [] and store.check() == []


def test_a_resumed_ingest_without_expected_digest_hashes_what_is_on_disk(store: BlobStore) -> None:
    with store.writer("upload-7", resumable=True) as w:
        w.write(b"chunk one, ")
    with store.writer("upload-7", resumable=True) as w:
        w.write(b"chunk two")
    with store.writer("upload-7") as w:
        info = w.commit()
    assert info.digest == Digest.of(b"chunk one, chunk two") and info.size == 20


def test_a_partial_longer_than_the_expected_size_starts_over(store: BlobStore) -> None:
    (store.root / "ingest" / "r").write_bytes(b"0123456789")
    with store.writer("r", Digest.of(b"abc"), 3) as w:
        assert w.offset == 0
        w.write(b"abc")
        w.commit()
    assert store.has(Digest.of(b"abc"))


def test_ingest_restarts_a_partial_left_under_its_ref(store: BlobStore) -> None:
    (store.root / "ingest" / "mine").write_bytes(b"garbage from a crash")
    info = store.ingest(io.BytesIO(b"real"), ref="mine")
    assert info.digest == Digest.of(b"real")


def test_a_leftover_hardlink_of_a_committed_blob_is_never_appended_to(store: BlobStore) -> None:
    """A crash between commit's link into blobs/ and its unlink of the partial leaves both names."""
    digest = store.put_bytes(b"committed")
    os.link(store.path(digest), store.root / "ingest" / "r")
    with store.writer("r", resumable=True) as w:
        assert w.offset == 0
        w.write(b"other")
        w.commit()
    assert store.read_bytes(digest) == b"committed"
    assert store.check() == []


def test_a_busy_ref_without_waiting_is_unavailable(store: BlobStore) -> None:
    with store.writer("busy"):
        with pytest.raises(Unavailable):
            store.writer("busy", wait=False)


def test_a_closed_or_committed_writer_refuses_more_writes(store: BlobStore) -> None:
    w = store.writer("w")
    w.write(b"a")
    w.commit()
    assert w.commit().digest == Digest.of(b"a")  # idempotent
    with pytest.raises(Conflict):
        w.write(b"b")
    w2 = store.writer("w2")
    w2.close()
    with pytest.raises(Conflict):
        w2.write(b"b")


def test_truncate_starts_the_partial_over(store: BlobStore) -> None:
    with store.writer("t") as w:
        w.write(b"wrong start")
        w.truncate(0)
        w.write(b"right")
        assert w.commit().digest == Digest.of(b"right")
    with store.writer("t") as w:
        with pytest.raises(InvalidArgument):
            w.truncate(5)


@pytest.mark.parametrize("ref", ["", "../escape", "a/b", ".hidden", "x" * 201, "sp ace", "nul\0"])
def test_a_ref_that_is_not_a_plain_name_is_refused(store: BlobStore, ref: str) -> None:
    with pytest.raises(InvalidArgument):
        store.writer(ref)
    assert ingest_files(store) == []


def test_a_negative_expected_size_is_refused(store: BlobStore) -> None:
    with pytest.raises(InvalidArgument):
        store.writer("r", expected_size=-1)
    assert ingest_files(store) == []


def test_reading_a_missing_blob_raises_not_found_naming_it(store: BlobStore) -> None:
    missing = Digest.of(b"nothing")
    for call in (store.open, store.size, store.path, store.read_bytes, store.delete):
        with pytest.raises(NotFound) as err:
            call(missing)
        assert str(missing) in str(err.value)
    assert not store.has(missing)


def test_read_bytes_refuses_a_blob_over_its_limit(store: BlobStore) -> None:
    digest = store.put_bytes(b"y" * ((4 << 20) + 1))
    with pytest.raises(LimitExceeded) as err:
        store.read_bytes(digest)
    assert str(4 << 20) in str(err.value)
    assert len(store.read_bytes(digest, limit=5 << 20)) == (4 << 20) + 1


def test_read_bytes_detects_a_blob_corrupted_on_disk(store: BlobStore) -> None:
    digest = store.put_bytes(b"manifest")
    path = store.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(Corrupt):
        store.read_bytes(digest)


def test_delete_removes_a_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"bye")
    store.delete(digest)
    assert not store.has(digest) and list(store.walk()) == []


def test_check_finds_a_corrupted_blob_and_stray_files(store: BlobStore) -> None:
    good = store.put_bytes(b"good")
    bad = store.put_bytes(b"bad")
    assert store.check() == []
    store.path(bad).chmod(0o644)
    store.path(bad).write_bytes(b"flipped")
    (store.root / "blobs" / "sha256" / "notahexname").write_bytes(b"")
    (store.root / "blobs" / "sha512").mkdir()
    (store.root / "ingest" / "adir").mkdir()
    problems = store.check()
    assert len(problems) == 4, problems
    assert any(str(bad) in p and Digest.of(b"flipped").hex in p for p in problems)
    assert not any(good.hex in p for p in problems)
    assert set(store.walk()) == {good, bad}


def test_a_blob_store_can_be_reopened_on_the_same_root(tmp_path: Path) -> None:
    digest = BlobStore(tmp_path).put_bytes(b"persist")
    assert BlobStore(tmp_path).read_bytes(digest) == b"persist"


def test_an_existing_blob_with_a_different_expected_size_is_corrupt(store: BlobStore) -> None:
    digest = store.put_bytes(b"four")
    with pytest.raises(Corrupt):
        store.ingest(io.BytesIO(b"four"), expected=digest, expected_size=5)
    assert store.has(digest) and ingest_files(store) == []


def test_the_size_of_a_partial_is_known_while_its_writer_holds_it(store: BlobStore) -> None:
    with store.writer("upload-1", resumable=True) as w:
        w.write(b"12345")
        assert store.partial_size("upload-1") == 5
    assert store.partial_size("upload-1") == 5
    with pytest.raises(NotFound):
        store.partial_size("no-such-upload")
    with pytest.raises(InvalidArgument):
        store.partial_size("../blobs")


class ReadOnlyStream:
    """A stream with read() but no readinto(), like some HTTP response bodies."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data, self._piece = data, piece

    def read(self, n: int = -1) -> bytes:
        out, self._data = self._data[:min(n, self._piece)], self._data[min(n, self._piece):]
        return out


def test_ingest_takes_streams_without_readinto_and_short_reads(store: BlobStore) -> None:
    data = os.urandom((3 << 20) + 7)
    info = store.ingest(ReadOnlyStream(data, 100_000), expected=Digest.of(data), expected_size=len(data))  # type: ignore[arg-type]
    assert info.size == len(data) and store.read_bytes(info.digest, limit=len(data)) == data


def test_write_from_continues_a_resumed_partial(store: BlobStore) -> None:
    data = os.urandom(5 << 20)
    with store.writer("r", resumable=True) as w:
        w.write(data[:12345])
    with store.writer("r", Digest.of(data), len(data)) as w:
        assert w.write_from(io.BytesIO(data[w.offset:])) == len(data) - 12345
        assert w.commit().digest == Digest.of(data)


def _resume_over_leftover_as_nobody(root: str) -> None:
    os.setgid(65534)
    os.setuid(65534)
    store = BlobStore(Path(root))
    with store.writer("r", resumable=True) as w:
        assert w.offset == 0
        w.write(b"other")
        w.commit()
    os._exit(0)


@pytest.mark.root
def test_a_non_root_writer_replaces_a_read_only_leftover_link(tmp_path: Path) -> None:
    import multiprocessing
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="berth-content-"))  # tmp_path's parents are closed to nobody
    try:
        os.chmod(root, 0o755)
        os.chown(root, 65534, 65534)
        store = BlobStore(root)
        for sub in ("blobs", "blobs/sha256", "ingest", "leases"):
            os.chown(root / sub, 65534, 65534)
        digest = store.put_bytes(b"committed")
        os.chown(store.path(digest), 65534, 65534)
        os.link(store.path(digest), root / "ingest" / "r")
        proc = multiprocessing.get_context("fork").Process(target=_resume_over_leftover_as_nobody, args=(str(root),))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        assert store.read_bytes(digest) == b"committed" and store.has(Digest.of(b"other"))
        assert store.check() == []
    finally:
        shutil.rmtree(root)


def test_a_symlink_planted_among_the_blobs_is_not_followed(store: BlobStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"host file")
    planted = Digest.of(b"host file")
    os.symlink(secret, store.root / "blobs" / "sha256" / planted.hex)
    with pytest.raises(Corrupt):
        store.open(planted)
    with pytest.raises(Corrupt):
        store.size(planted)
    assert not store.has(planted)
    assert list(store.walk()) == []
    assert any("not a regular file" in p for p in store.check())


def test_a_fifo_among_blobs_or_partials_hangs_neither_reads_nor_gc(store: BlobStore) -> None:
    fifo = Digest.of(b"fifo")
    os.mkfifo(store.root / "blobs" / "sha256" / fifo.hex)
    os.mkfifo(store.root / "ingest" / "a-fifo")
    with pytest.raises(Corrupt):
        store.open(fifo)
    assert store.gc([]).ingests_removed == ()
    assert len(store.check()) == 2


def _write_until_the_file_size_limit(root: str, data: bytes) -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG, after a short write
    resource.setrlimit(resource.RLIMIT_FSIZE, ((3 << 20) // 2, resource.RLIM_INFINITY))
    store = BlobStore(Path(root))
    with store.writer("big", Digest.of(data), len(data), resumable=True) as w:
        w.write(data[: 1 << 20])
        try:
            w.write(data[1 << 20:])
        except OSError as exc:
            assert w.offset == (3 << 20) // 2, w.offset  # the short write is counted
            os._exit(0 if exc.errno == 27 else 3)  # EFBIG
    os._exit(2)


def test_a_failed_write_keeps_the_offset_true_to_the_file(store: BlobStore) -> None:
    import multiprocessing

    data = os.urandom(2 << 20)
    proc = multiprocessing.get_context("fork").Process(target=_write_until_the_file_size_limit,
                                                       args=(str(store.root), data))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    with store.writer("big", Digest.of(data), len(data), resumable=True) as w:
        assert w.offset == (3 << 20) // 2
        w.write(data[w.offset:])
        assert w.commit().digest == Digest.of(data)
