"""The received build context: the streaming tar index, its tree view and checksums, materializing paths from the
spool (in memory and spilled to a file), and the bodies it refuses."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.build.checksum import source_checksum, walk_entries
from berth.build.context import OS_TREE, Tree, context_tar, resolve_source_entries, scoped_path
from berth.build.intake import Context, ContextIntake, receive_context
from berth.errors import Corrupt, InvalidArgument, LimitExceeded, NotFound, UnsafePath


def make_context(root: Path) -> None:
    (root / "sub/deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "empty").write_bytes(b"")
    (root / "sub/a.txt").write_text("a\n")
    (root / "sub/deeper/run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub/deeper/run.sh", 0o4751)
    os.chmod(root / "sub/deeper", 0o750)
    os.link(root / "sub/a.txt", root / "sub/hard.txt")
    os.symlink("../big.bin", root / "sub/link")
    os.symlink("/etc/passwd", root / "abs-link")
    (root / ("x" * 120)).write_text("a long name\n")      # beyond ustar's 100 bytes: PAX or a prefix
    (root / "sub/ünï.txt").write_text("non-ASCII name: a PAX path record\n")
    os.utime(root / "sub/a.txt", (1_600_000_000, 1_600_000_000))


def tar_bytes(root: Path) -> bytes:
    buf = io.BytesIO()
    context_tar(root, "Dockerfile", None, buf)
    return buf.getvalue()


def pieces(data: bytes, sizes: tuple[int, ...]) -> Iterator[bytes]:
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i:i + n]
        i += n
        k += 1


def resolve_sources(root: Path, patterns: list[str], tree: Tree = OS_TREE) -> list[Path]:
    return [e.path for e in resolve_source_entries(root, patterns, tree)]


def intake_of(data: bytes, dest: Path, sizes: tuple[int, ...] = (65536,), **kw: int) -> Context:
    dest.mkdir(exist_ok=True)
    intake = ContextIntake(dest, **kw)
    for piece in pieces(data, sizes):
        intake.feed(piece)
    return intake.finish()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    make_context(root)
    return root


@pytest.mark.parametrize("sizes", [(65536,), (1, 7, 511, 513, 4096), (1 << 20,)])
def test_the_index_answers_as_the_tree_it_came_from(src: Path, tmp_path: Path, sizes: tuple[int, ...]) -> None:
    ctx = intake_of(tar_bytes(src), tmp_path / "recv", sizes)
    assert not ctx.root.exists()                  # nothing written yet
    for rel, st in walk_entries(src):
        path = ctx.root / rel if rel != "." else ctx.root
        mine = ctx.lstat(path)
        assert stat.S_IFMT(mine.st_mode) == stat.S_IFMT(st.st_mode), rel
        if rel != ".":
            assert stat.S_IMODE(mine.st_mode) == stat.S_IMODE(st.st_mode), rel
        if stat.S_ISREG(st.st_mode):
            assert mine.st_size == st.st_size
            assert ctx.digest_of(path) == hashlib.sha256((src / rel).read_bytes()).hexdigest()
        if stat.S_ISLNK(st.st_mode):
            assert ctx.readlink(path) == os.readlink(src / rel)
        if stat.S_ISDIR(st.st_mode):
            assert sorted(ctx.listdir(path)) == sorted(os.listdir(src / rel))
    assert ctx.lstat(ctx.root / "sub/a.txt").st_mtime == 1_600_000_000
    with pytest.raises(FileNotFoundError):
        ctx.lstat(ctx.root / "missing")
    with pytest.raises(NotADirectoryError):
        ctx.lstat(ctx.root / "empty/below")
    with pytest.raises(NotADirectoryError):
        ctx.listdir(ctx.root / "empty")
    assert ctx.lstat(tmp_path).st_ino == os.lstat(tmp_path).st_ino   # outside the context: the host answers
    ctx.close()


def test_checksums_and_source_lookups_match_those_of_the_unpacked_tree(src: Path, tmp_path: Path) -> None:
    os.chmod(src, 0o755)      # the root's mode is in a checksum of '.'; a received root is 0755
    ctx = intake_of(tar_bytes(src), tmp_path / "recv")
    for sources in (["."], ["sub"], ["big.bin"], ["sub/link"], ["sub", "empty", "empty-dir"], ["*.bin", "sub/*"]):
        mine = resolve_sources(ctx.root, sources, ctx)
        theirs = resolve_sources(src, sources)
        assert [p.relative_to(ctx.root) for p in mine] == [p.relative_to(src) for p in theirs]
        assert source_checksum(mine, ctx.digest_of, ctx) == source_checksum(theirs), sources
    assert scoped_path(ctx.root, "abs-link", ctx) == ctx.root / "etc/passwd"   # never the host's /etc
    with pytest.raises(NotFound):
        resolve_sources(ctx.root, ["abs-link"], ctx)
    with pytest.raises(UnsafePath):
        resolve_sources(ctx.root, ["../x"], ctx)
    assert not ctx.root.exists()
    ctx.close()


@pytest.mark.parametrize("budget", [128 << 20, 64 << 10])
def test_materialize_writes_just_the_paths_asked_for(src: Path, tmp_path: Path, budget: int) -> None:
    dest = tmp_path / "recv"
    ctx = intake_of(tar_bytes(src), dest, memory_budget=budget)
    assert (dest / "context.tar").exists() == (budget < (1 << 20))      # a big context spills to a scratch file
    ctx.materialize([ctx.root / "sub", ctx.root / "big.bin"])
    ctx.materialize([ctx.root / "sub"])           # twice is harmless
    assert sorted(os.listdir(ctx.root)) == ["big.bin", "sub"]
    for rel in ("big.bin", "sub/a.txt", "sub/hard.txt", "sub/deeper/run.sh", "sub/ünï.txt"):
        assert (ctx.root / rel).read_bytes() == (src / rel).read_bytes(), rel
        assert stat.S_IMODE(os.lstat(ctx.root / rel).st_mode) == stat.S_IMODE(os.lstat(src / rel).st_mode)
    assert stat.S_IMODE(os.lstat(ctx.root / "sub/deeper").st_mode) == 0o750
    assert os.readlink(ctx.root / "sub/link") == "../big.bin"
    assert os.lstat(ctx.root / "sub/a.txt").st_mtime == 1_600_000_000
    ctx.materialize([ctx.root / "not-there", tmp_path / "elsewhere"])     # not in the context: left alone
    assert not (tmp_path / "elsewhere").exists()
    ctx.close()
    assert not (dest / "context.tar").exists()


def test_a_later_entry_replaces_an_earlier_one(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mode = kind, len(data), link, 0o640
            tar.addfile(info, io.BytesIO(data))
        add("d/", tarfile.DIRTYPE)
        add("d/f", data=b"one")
        add("./d/f", data=b"two")                  # same path: the later one wins
        add("g/inner/x", data=b"x")                 # parents implied
        add("g", data=b"now a file")               # a directory replaced by a file loses its children
        add("/abs/" + "n" * 150, data=b"long")      # GNU long name, leading '/' dropped
        add("h", tarfile.LNKTYPE, link="d/f")
    ctx = intake_of(buf.getvalue(), tmp_path / "recv")
    assert ctx.read_bytes(ctx.root / "d/f", 100) == b"two"
    assert ctx.read_bytes(ctx.root / "h", 100) == b"two"
    assert stat.S_ISREG(ctx.lstat(ctx.root / "g").st_mode)
    with pytest.raises(NotADirectoryError):
        ctx.lstat(ctx.root / "g/inner")
    assert stat.S_IMODE(ctx.lstat(ctx.root / "abs").st_mode) == 0o755
    assert ctx.read_bytes(ctx.root / ("abs/" + "n" * 150), 100) == b"long"
    ctx.materialize([ctx.root])
    assert sorted(os.listdir(ctx.root)) == ["abs", "d", "g", "h"]
    assert (ctx.root / "h").read_bytes() == b"two"
    ctx.close()


def test_a_body_that_is_not_a_tar_is_a_dockerfile(tmp_path: Path) -> None:
    ctx = intake_of(b"FROM busybox\n", tmp_path / "a")
    assert ctx.listdir(ctx.root) == ["Dockerfile"]
    assert ctx.read_bytes(ctx.root / "Dockerfile", 100) == b"FROM busybox\n"
    text = b"FROM busybox\n" + b"RUN echo hello\n" * 100
    ctx = intake_of(text, tmp_path / "b", (3,))
    assert ctx.read_bytes(ctx.root / "Dockerfile", 1 << 20) == text
    empty = intake_of(b"", tmp_path / "c")
    assert empty.listdir(empty.root) == []


def test_compressed_bodies_through_the_blocking_reader(src: Path, tmp_path: Path) -> None:
    (tmp_path / "recv").mkdir()
    ctx = receive_context(io.BytesIO(gzip.compress(tar_bytes(src))), tmp_path / "recv")
    assert ctx.digest_of(ctx.root / "big.bin") == hashlib.sha256((src / "big.bin").read_bytes()).hexdigest()
    ctx.close()


def _tar(*entries: tuple[str, bytes, bytes, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, len(data), link
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(("data", "error", "text"), [
    (_tar(("../escape", tarfile.REGTYPE, b"x", "")), UnsafePath, "outside the context"),
    (_tar(("a/../../escape", tarfile.REGTYPE, b"x", "")), UnsafePath, "outside the context"),
    (_tar(("f", tarfile.REGTYPE, b"x", ""), ("f/g", tarfile.REGTYPE, b"y", "")), UnsafePath, "not a directory"),
    (_tar(("l", tarfile.SYMTYPE, b"", "/etc"), ("l/passwd", tarfile.REGTYPE, b"y", "")), UnsafePath,
     "not a directory"),
    (_tar(("h", tarfile.LNKTYPE, b"", "missing")), InvalidArgument, "hard link"),
    (_tar(("d", tarfile.DIRTYPE, b"", ""), ("h", tarfile.LNKTYPE, b"", "d")), InvalidArgument, "hard link"),
    (_tar(("s", b"S", b"", "")), InvalidArgument, "unsupported tar type"),
    (_tar(("f", tarfile.REGTYPE, b"x" * 5000, ""))[:2048], Corrupt, "truncated"),
])
def test_bad_archives_are_refused(tmp_path: Path, data: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        intake_of(data, tmp_path / "recv")


def test_a_damaged_header_and_the_size_limit(tmp_path: Path) -> None:
    good = _tar(("a", tarfile.REGTYPE, b"x" * 600, ""), ("b", tarfile.REGTYPE, b"y", ""))
    bad = bytearray(good)
    bad[1536 + 10] ^= 0xFF        # the second entry's header: its checksum no longer matches
    with pytest.raises(Corrupt, match="checksum"):
        intake_of(bytes(bad), tmp_path / "recv")
    with pytest.raises(LimitExceeded, match="limit of 1000 bytes"):
        intake_of(good, tmp_path / "recv2", limit=1000)
    with pytest.raises(LimitExceeded, match="limit of 1000 bytes"):
        intake_of(b"not a tar\n" * 200, tmp_path / "recv3", limit=1000)
    small = intake_of(b"not a tar\n" * 90, tmp_path / "recv4", limit=1000)
    assert small.lstat(small.root / "Dockerfile").st_size == 900


def test_spool_blocks_are_reused_by_the_next_build_then_let_go(src: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.build import intake
    monkeypatch.setattr(intake, "POOL_IDLE", 0.2)
    intake._POOL.drain()
    data = tar_bytes(src)
    first = intake_of(data, tmp_path / "one")
    first.close()
    kept = len(intake._POOL)
    assert kept >= 1
    second = intake_of(data, tmp_path / "two")
    assert len(intake._POOL) < kept                # taken again
    second.materialize([second.root / "big.bin"])
    assert (second.root / "big.bin").read_bytes() == (src / "big.bin").read_bytes()   # no stale bytes
    second.close()
    deadline = time.monotonic() + 5
    while len(intake._POOL) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(intake._POOL) == 0                  # let go once idle
