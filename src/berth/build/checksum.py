"""The content checksum of what a COPY or ADD copies: the cache key's part that sees the files.

Like Docker's tarsum for the classic builder: every entry's relative name, type, mode, link target and contents,
never its mtime (so touching a file, or a fresh checkout, does not break the cache) nor its owner in the context
(COPY gives files root's or --chown's owner anyway). Docker's history texts show it as `file:<hex>` for one
file, `dir:<hex>` for one directory and `multi:<hex>` for several sources.

May import: berth.errors.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

_CHUNK = 1 << 20


def walk_entries(top: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of top (as '.') and everything below it, in a fixed order, never following links."""
    st = os.lstat(top)
    yield ".", st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in sorted(os.listdir(top / rel if rel else top)):
            child = f"{rel}/{name}" if rel else name
            cst = os.lstat(top / child)
            yield child, cst
            if stat.S_ISDIR(cst.st_mode):
                stack.append(child)


def source_checksum(sources: Sequence[Path], digest_of: Callable[[Path], str | None] = lambda _: None) -> str:
    """`file:<hex>`, `dir:<hex>` or `multi:<hex>` of the given paths. digest_of may know a file's sha256 already
    (the context hashed its files as they arrived); other files are read."""
    total = hashlib.sha256()
    for src in sources:
        h = hashlib.sha256()
        for rel, st in walk_entries(src):
            kind = stat.S_IFMT(st.st_mode)
            link = os.readlink(src / rel) if stat.S_ISLNK(st.st_mode) else ""
            h.update(f"{rel}\0{kind}\0{stat.S_IMODE(st.st_mode):o}\0{link}\0".encode("utf-8", "surrogateescape"))
            if stat.S_ISREG(st.st_mode):
                known = digest_of(src / rel if rel != "." else src)
                if known is not None:
                    h.update(bytes.fromhex(known))
                else:
                    content = hashlib.sha256()
                    with open(src / rel, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as f:
                        while chunk := f.read(_CHUNK):
                            content.update(chunk)
                    h.update(content.digest())
                h.update(b"\0")
        total.update(h.digest())
        single = h.hexdigest()
    if len(sources) == 1:
        kind_name = "dir" if stat.S_ISDIR(os.lstat(sources[0]).st_mode) else "file"
        return f"{kind_name}:{single}"
    return f"multi:{total.hexdigest()}"
