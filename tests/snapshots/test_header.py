"""The fast header path agrees with tarfile on every block it accepts, and declines the rest."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from berth.snapshots.apply import _members
from berth.snapshots.header import parse_basic
from berth.snapshots.stream import LayerReader
from tests.snapshots.layers import E, d, f, hard, sym, tar_bytes

_FIELDS = ("name", "type", "size", "mode", "uid", "gid", "mtime", "linkname", "devmajor", "devminor",
           "offset", "offset_data", "pax_headers", "sparse")


def _view(info: tarfile.TarInfo) -> tuple[object, ...]:
    return tuple(getattr(info, name) for name in _FIELDS)


def _ours(blob: bytes) -> list[tuple[object, ...]]:
    with LayerReader(io.BytesIO(blob), None, "t", 1 << 30) as reader:
        return [_view(m) for m in _members(reader, "t")]


def _theirs(blob: bytes) -> list[tuple[object, ...]]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        return [_view(m) for m in tar.getmembers()]


ENTRIES = [
    d("dir"), d("dir/sub/"), f("dir/sub/file", b"x" * 1000, mode=0o4755, uid=1000, gid=1000),
    f("p" * 90 + "/" + "q" * 90, b"prefixed ustar name"), sym("link", "dir/sub/file"), hard("hard", "dir/sub/file"),
    E("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3), E("fifo", tarfile.FIFOTYPE),
    E("cont", tarfile.CONTTYPE, data=b""), f("empty"), f("n\udcff", b"raw name"),
]


def test_members_match_tarfile_for_ustar_gnu_and_pax_layers() -> None:
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        entries = ENTRIES if fmt != tarfile.USTAR_FORMAT else ENTRIES[:-1]
        blob = tar_bytes(entries, fmt=fmt)
        assert _ours(blob) == _theirs(blob), fmt


def test_extended_headers_fall_back_to_tarfile_with_the_same_result() -> None:
    blob = tar_bytes([f("x" * 300, b"long"), f("big-uid", uid=2**30, pax={"SCHILY.xattr.user.a": "1"}),
                      sym("l", "t" * 200), f("after", b"plain again")], fmt=tarfile.PAX_FORMAT)
    gnu = tar_bytes([f("y" * 300, b"long"), f("huge-uid", uid=2**40), f("plain")], fmt=tarfile.GNU_FORMAT)
    assert _ours(blob) == _theirs(blob)
    assert _ours(gnu) == _theirs(gnu)


def test_a_v7_directory_with_a_trailing_slash_is_a_directory() -> None:
    info = tarfile.TarInfo("olddir/")
    info.type = tarfile.AREGTYPE
    block = info.tobuf(tarfile.USTAR_FORMAT)
    ours = parse_basic(block, 0)
    assert ours is not None and ours[0].type == tarfile.DIRTYPE and ours[0].name == "olddir"
    assert _view(ours[0])[:2] == _view(tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape"))[:2]


_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=60)


@settings(max_examples=400, deadline=None)
@given(name=_names, kind=st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                          tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.AREGTYPE, b"V", b"x"]),
       size=st.integers(0, 8**11 - 1), mode=st.integers(0, 0o7777), uid=st.integers(0, 8**7 - 1),
       mtime=st.integers(0, 8**11 - 1), flips=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)),
                                                        max_size=3))
def test_any_block_the_fast_path_accepts_parses_as_tarfile_parses_it(
        name: str, kind: bytes, size: int, mode: int, uid: int, mtime: int, flips: list[tuple[int, int]]) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.uid, info.mtime = kind, size, mode, uid, mtime
    try:
        block = bytearray(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")[:512])
    except ValueError:
        return
    for pos, value in flips:
        block[pos] = value
    if not any(148 <= pos < 156 for pos, _ in flips):
        # Keep the block valid where the flips left the checksum alone, so that mangled fields
        # (not just bad checksums) reach both parsers.
        block[148:156] = b"%06o\0 " % (256 + sum(block) - sum(block[148:156]))
    ours = parse_basic(bytes(block), 0)
    if ours is None:
        return
    theirs = tarfile.TarInfo.frombuf(bytes(block), "utf-8", "surrogateescape")
    fields = ("name", "type", "size", "mode", "uid", "gid", "mtime", "linkname", "devmajor", "devminor")
    assert tuple(getattr(ours[0], n) for n in fields) == tuple(getattr(theirs, n) for n in fields)
