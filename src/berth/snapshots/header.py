"""A fast path for the common tar header: one plain ustar/GNU block, no extensions.

tarfile's `TarInfo.frombuf` costs ~15 µs a header, a large share of unpacking a layer of small
files. Most headers of real layers are single blocks with octal fields and a basic type, and
those are parsed here with the same rules as tarfile (`nts`, `nti`, the unsigned checksum, the
ustar prefix, V7 directories with a trailing slash). Anything else - PAX and GNU extension
records, sparse files, base-256 numbers, a signed checksum, a bad or zero block - returns None,
and the caller lets tarfile parse it (and raise its errors) instead.

May import: berth.errors (nothing else needed).
"""

from __future__ import annotations

import tarfile

# Types whose header is one block and whose fields mean what frombuf says they mean.
_BASIC = frozenset([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE,
                    tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE])
_DATA = frozenset([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE])
_NUMERIC = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))


def _text(field: bytes) -> str:
    end = field.find(b"\0")
    return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _octal(field: bytes) -> int:
    end = field.find(b"\0")
    # int() of the stripped ASCII digits, exactly as tarfile.nti does for octal fields.
    return int((field if end < 0 else field[:end]).decode("ascii").strip() or "0", 8)


def parse_basic(block: bytes, offset: int) -> tuple[tarfile.TarInfo, int] | None:
    """(member, offset of the next header) for a basic one-block header at offset, else None."""
    if len(block) != tarfile.BLOCKSIZE:
        return None
    kind = block[156:157]
    if kind not in _BASIC:
        return None
    for start, _ in _NUMERIC:
        if block[start] & 0x80:                     # base-256 number: leave it to tarfile
            return None
    # The unsigned checksum of tarfile.calc_chksums: the checksum field counts as 8 spaces.
    try:
        chksum = _octal(block[148:156])
    except (ValueError, UnicodeDecodeError):
        return None
    if chksum != 256 + sum(block) - sum(block[148:156]):
        return None
    try:
        mode, uid, gid, size, mtime, devmajor, devminor = (_octal(block[a:b]) for a, b in _NUMERIC)
    except (ValueError, UnicodeDecodeError):
        return None
    name = _text(block[0:100])
    if kind == tarfile.AREGTYPE and name.endswith("/"):
        kind = tarfile.DIRTYPE
    if kind == tarfile.DIRTYPE:
        name = name.rstrip("/")
    prefix = _text(block[345:500])
    if prefix:
        name = prefix + "/" + name
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, gid, size, mtime
    info.chksum = chksum
    info.type = kind
    info.linkname = _text(block[157:257])
    info.devmajor, info.devminor = devmajor, devminor
    info.offset = offset
    info.offset_data = offset + tarfile.BLOCKSIZE
    following = info.offset_data
    if kind in _DATA:
        following += -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return info, following
