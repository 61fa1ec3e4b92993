"""The extractor's stream handling: compression, diff_id, corrupt input, limits, metadata."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest
import zstandard

from berth.errors import Corrupt, LimitExceeded
from berth.snapshots import stream
from berth.snapshots.apply import Limits, apply_layer
from berth.snapshots.stream import Compression, detect_compression
from tests.snapshots.layers import E, d, f, gz, sym, tar_bytes, zst

SAMPLE = [d("etc"), f("etc/hostname", b"berth\n"), f("big", os.urandom(3 << 20)), sym("link", "etc/hostname")]


def _apply(root: Path, blob: bytes, **kw: object) -> object:
    root.mkdir(exist_ok=True)
    return apply_layer(io.BytesIO(blob), root, label="sha256:feed", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("compress,kind", [(lambda b: b, Compression.NONE), (gz, Compression.GZIP),
                                           (zst, Compression.ZSTD)])
def test_diff_id_is_the_sha256_of_the_whole_uncompressed_stream(tmp_path: Path, compress: object,
                                                                 kind: Compression) -> None:
    plain = tar_bytes(SAMPLE)
    assert len(plain) % 10240 == 0 and plain.endswith(b"\0" * 1024)   # trailing blocks are hashed too
    result = _apply(tmp_path / "r", compress(plain))  # type: ignore[operator]
    assert result.diff_id.hex == hashlib.sha256(plain).hexdigest()  # type: ignore[attr-defined]
    assert result.size == len(plain) and result.entries == 4 and result.compression is kind  # type: ignore[attr-defined]
    assert (tmp_path / "r" / "big").read_bytes() == SAMPLE[2].data


def test_compression_is_detected_from_magic_bytes() -> None:
    assert detect_compression(gz(b"x")) is Compression.GZIP
    assert detect_compression(zst(b"x")) is Compression.ZSTD
    assert detect_compression(tar_bytes([f("a")])) is Compression.NONE


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    plain = tar_bytes(SAMPLE)
    result = _apply(tmp_path / "r", gz(plain[:5000]) + gz(plain[5000:]))
    assert result.diff_id.hex == hashlib.sha256(plain).hexdigest()  # type: ignore[attr-defined]


def test_an_empty_blob_is_an_empty_layer(tmp_path: Path) -> None:
    result = _apply(tmp_path / "r", b"")
    assert result.entries == 0 and result.diff_id.hex == hashlib.sha256(b"").hexdigest()  # type: ignore[attr-defined]


_SMALL = 512 + (2 << 20)         # offset of the second header in the layer below


def _corrupt(blob: bytes) -> bytes:
    mid = len(blob) // 2
    return blob[:mid] + bytes(b ^ 0x5A for b in blob[mid:mid + 64]) + blob[mid + 64:]


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: gz(p)[: len(gz(p)) // 2], id="truncated-gzip"),
    pytest.param(lambda p: gz(p)[:-5], id="gzip-missing-trailer"),
    pytest.param(lambda p: _corrupt(gz(p)), id="corrupt-gzip"),
    pytest.param(lambda p: gz(p) + b"trailing junk", id="gzip-trailing-junk"),
    pytest.param(lambda p: zst(p)[: len(zst(p)) // 2], id="truncated-zstd"),
    pytest.param(lambda p: zst(p)[:-3], id="zstd-cut-in-last-block"),
    pytest.param(lambda p: _corrupt(zstandard.ZstdCompressor(write_checksum=True).compress(p)),
                 id="corrupt-zstd"),
    pytest.param(lambda p: zst(p)[:4] + b"\xff" * 8 + zst(p)[12:], id="corrupt-zstd-frame-header"),
    pytest.param(lambda p: p[:_SMALL] + b"garbage!" * 64 + p[_SMALL + 512:], id="tar-garbage-header"),
    pytest.param(lambda p: b"\x01" * 512 + p, id="tar-garbage-first-header"),
    pytest.param(lambda p: p[: 512 + (1 << 20)], id="tar-truncated-inside-file"),
    pytest.param(lambda p: p[:-10240] + b"\0" * 512 + b"\xff" * 512, id="tar-data-after-end-block"),
])
def test_corrupt_or_truncated_input_is_corrupt_naming_the_layer(tmp_path: Path, make: object) -> None:
    plain = tar_bytes([f("big", os.urandom(2 << 20)), f("small", b"s"), f("tail", b"t")])
    with pytest.raises(Corrupt, match="sha256:feed"):
        _apply(tmp_path / "r", make(plain))  # type: ignore[operator]


def test_a_header_with_a_bad_checksum_mid_stream_is_not_taken_for_the_end(tmp_path: Path) -> None:
    plain = bytearray(tar_bytes([f("a", b"1" * 512), f("b", b"2")]))
    plain[1024 + 100] ^= 0xFF                   # b's header (at 1024) breaks in its mode field
    with pytest.raises(Corrupt, match="invalid tar header"):
        _apply(tmp_path / "r", bytes(plain))


def test_the_entry_count_limit_refuses_naming_the_limit(tmp_path: Path) -> None:
    with pytest.raises(LimitExceeded, match="limit of 10 entries"):
        _apply(tmp_path / "r", tar_bytes([f(f"f{i}") for i in range(11)]), limits=Limits(max_entries=10))
    _apply(tmp_path / "ok", tar_bytes([f(f"f{i}") for i in range(10)]), limits=Limits(max_entries=10))


def test_the_size_limit_refuses_a_compression_bomb_naming_the_limit(tmp_path: Path) -> None:
    bomb = gz(tar_bytes([f("zeros", b"\0" * (64 << 20))]))
    assert len(bomb) < 100_000
    with pytest.raises(LimitExceeded, match=f"limit of {32 << 20} bytes"):
        _apply(tmp_path / "r", bomb, limits=Limits(max_bytes=32 << 20))


def test_an_oversized_pax_record_is_refused(tmp_path: Path) -> None:
    layer = tar_bytes([f("a", pax={"comment": "x" * (2 << 20)})])
    with pytest.raises(LimitExceeded, match="tar header record"):
        _apply(tmp_path / "r", layer)


def test_metadata_is_preserved(tmp_path: Path) -> None:
    xattr = {"SCHILY.xattr.user.berth": "v\udcff\x00bin", "SCHILY.xattr.trusted.overlay.opaque": "y"}
    layer = tar_bytes([
        d("opt", mode=0o1777, mtime=1_000_000_000, uid=12, gid=34),
        f("opt/suid", b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0, mtime=1_234_567_890, pax=xattr),
        f("opt/owned", b"o", mode=0o600, uid=1000, gid=1001, mtime=1_500_000_000),
        E("opt/fifo", tarfile.FIFOTYPE, mode=0o640, mtime=1_400_000_000),
        sym("opt/link", "/nonexistent/abs"),
        f("n\udce9-latin1", b"non-utf8 name"),
    ])
    root = tmp_path / "r"
    _apply(root, layer)
    opt = os.lstat(root / "opt")
    assert stat.S_IMODE(opt.st_mode) == 0o1777 and opt.st_mtime == 1_000_000_000   # set after its contents
    suid = os.lstat(root / "opt/suid")
    assert stat.S_IMODE(suid.st_mode) == 0o4755 and suid.st_mtime == 1_234_567_890
    assert os.getxattr(root / "opt/suid", "user.berth") == b"v\xff\x00bin"
    assert "trusted.overlay.opaque" not in os.listxattr(root / "opt/suid")
    assert stat.S_ISFIFO(os.lstat(root / "opt/fifo").st_mode)
    assert stat.S_IMODE(os.lstat(root / "opt/fifo").st_mode) == 0o640
    assert os.readlink(root / "opt/link") == "/nonexistent/abs"
    assert (root / os.fsdecode(b"n\xe9-latin1")).read_bytes() == b"non-utf8 name"
    if os.geteuid() == 0:
        owned = os.lstat(root / "opt/owned")
        assert (owned.st_uid, owned.st_gid) == (1000, 1001)
        assert (opt.st_uid, opt.st_gid) == (12, 34)


def test_long_names_in_gnu_and_pax_formats(tmp_path: Path) -> None:
    deep = "/".join(["segment-" + "x" * 40] * 6) + "/file"
    for fmt, sub in ((tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")):
        _apply(tmp_path / sub, tar_bytes([f(deep, b"deep"), sym("l" * 200, "t" * 300)], fmt=fmt))
        assert (tmp_path / sub / deep).read_bytes() == b"deep"
        assert os.readlink(tmp_path / sub / ("l" * 200)) == "t" * 300


def test_a_later_duplicate_entry_replaces_the_earlier_one(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _apply(root, tar_bytes([d("a"), f("a/in", b"1"), f("a", b"now a file"), f("b", b"old"), d("b"),
                            f("b/c", b"new")]))
    assert (root / "a").read_bytes() == b"now a file"
    assert (root / "b" / "c").read_bytes() == b"new"


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files_are_written_with_their_holes(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "sparse"
    with open(src, "wb") as out:
        out.seek(1 << 20)
        out.write(b"data")
        out.truncate(3 << 20)
    archive = tmp_path / "sparse.tar"
    # tarfile cannot write sparse members; GNU tar writes old GNU (gnu) or PAX 1.0 (posix) sparse maps.
    subprocess.run(["tar", f"--format={fmt}", "--sparse", "-cf", str(archive), "-C", str(tmp_path), "sparse"],
                   check=True)
    _apply(tmp_path / "r", archive.read_bytes())
    got = (tmp_path / "r" / "sparse").read_bytes()
    assert len(got) == 3 << 20 and got[1 << 20:(1 << 20) + 4] == b"data" and got.count(0) == len(got) - 4
    assert os.lstat(tmp_path / "r" / "sparse").st_blocks * 512 < 1 << 20     # the holes stayed holes


@pytest.mark.parametrize("entry,fmt", [
    pytest.param(f("uid", pax={"uid": str(2**40)}), tarfile.PAX_FORMAT, id="uid-beyond-32-bits"),
    pytest.param(f("t", pax={"mtime": "1e30"}), tarfile.PAX_FORMAT, id="mtime-out-of-range"),
    pytest.param(E("dev", tarfile.CHRTYPE, devmajor=2**40), tarfile.GNU_FORMAT, id="device-number-out-of-range"),
    pytest.param(f("nul", pax={"path": "a\x00b"}), tarfile.PAX_FORMAT, id="nul-in-name"),
])
def test_out_of_range_header_fields_are_corrupt_not_a_crash(tmp_path: Path, entry: E, fmt: int) -> None:
    with pytest.raises(Corrupt, match="sha256:feed"):
        _apply(tmp_path / "r", tar_bytes([entry], fmt=fmt), same_owner=True)


class _Trickle(io.RawIOBase):
    """A raw stream that returns one byte, then at most 1000 bytes per read (like a slow socket)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos, self._first = data, 0, True

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = 1 if self._first else min(n if n >= 0 else 1000, 1000)
        self._first = False
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


@pytest.mark.parametrize("compress", [gz, zst])
def test_short_reads_from_a_raw_stream_still_detect_compression(tmp_path: Path, compress: object) -> None:
    plain = tar_bytes(SAMPLE)
    result = _apply(tmp_path / "r", compress(plain))  # type: ignore[operator]
    root = tmp_path / "raw"
    root.mkdir()
    raw = apply_layer(_Trickle(compress(plain)), root)  # type: ignore[operator,arg-type]
    assert raw.diff_id == result.diff_id and (root / "big").read_bytes() == SAMPLE[2].data  # type: ignore[attr-defined]


@pytest.mark.root
def test_file_capabilities_survive_the_owner_change(tmp_path: Path) -> None:
    # vfs_cap_data revision 2, effective bit set, permitted = CAP_NET_RAW (13): `setcap cap_net_raw+ep`.
    cap = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
    layer = tar_bytes([f("ping", b"\x7fELF", mode=0o4755, uid=1000, gid=1000,
                         pax={"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")})])
    _apply(tmp_path / "r", layer)
    ping = tmp_path / "r" / "ping"
    assert os.getxattr(ping, "security.capability") == cap
    st = os.lstat(ping)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1000, 0o4755)


def test_a_sparse_file_larger_than_the_size_limit_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "huge"
    with open(src, "wb") as out:
        out.truncate(1 << 30)                                    # 1 GiB of holes, a few bytes in the tar
    archive = tmp_path / "huge.tar"
    subprocess.run(["tar", "--format=posix", "--sparse", "-cf", str(archive), "-C", str(tmp_path), "huge"],
                   check=True)
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(LimitExceeded, match=f"limit of {64 << 20} bytes"):
        _apply(tmp_path / "r", archive.read_bytes(), limits=Limits(max_bytes=64 << 20))


@pytest.mark.parametrize("inflater", ["isal", "zlib"])
def test_gzip_layers_unpack_the_same_with_either_inflater(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          inflater: str) -> None:
    if inflater == "zlib":           # the fallback when isal is not installed
        monkeypatch.setattr(stream, "_inflate", zlib)
        monkeypatch.setattr(stream, "_INFLATE_ERRORS", (zlib.error,))
    plain = tar_bytes(SAMPLE)
    result = _apply(tmp_path / "r", gz(plain[:7000]) + gz(plain[7000:]))
    assert result.diff_id.hex == hashlib.sha256(plain).hexdigest()  # type: ignore[attr-defined]
    for bad in (gz(plain)[:-5], _corrupt(gz(plain))):
        with pytest.raises(Corrupt, match="gzip"):
            _apply(tmp_path / "bad", bad)
