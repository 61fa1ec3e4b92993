"""The content checksum of what a COPY or ADD copies: the cache key's part that sees the files.

Like Docker's tarsum for the classic builder: every entry's relative name, type, mode, link target and contents,
never its mtime (so touching a file, or a fresh checkout, does not break the cache) nor its owner in the context
(COPY gives files root's or --chown's owner anyway). Docker's history texts show it as `file:<hex>` for one
file, `dir:<hex>` for one directory and `multi:<hex>` for several sources.

The files are seen through a Tree (berth.build.context): the received context's index, which knows every file's
sha256 from the stream (digest_of), or the host's filesystem.

May import: berth.build.context, berth.errors.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from berth.build.context import OS_TREE, Tree

_CHUNK = 1 << 20
_PARALLEL_ABOVE = 8 << 20


def walk_entries(top: Path, tree: Tree = OS_TREE) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of top (as '.') and everything below it, in a fixed order, never following links."""
    st = tree.lstat(top)
    yield ".", st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in sorted(tree.listdir(top / rel if rel else top)):
            child = f"{rel}/{name}" if rel else name
            cst = tree.lstat(top / child)
            yield child, cst
            if stat.S_ISDIR(cst.st_mode):
                stack.append(child)


def source_checksum(sources: Sequence[Path], digest_of: Callable[[Path], str | None] = lambda _: None,
                    tree: Tree = OS_TREE) -> str:
    """`file:<hex>`, `dir:<hex>` or `multi:<hex>` of the given paths. digest_of may know a file's sha256 already;
    other files are read, big ones on several threads (hashlib releases the GIL while it hashes)."""
    walked = [[(rel, st, src / rel if rel != "." else src) for rel, st in walk_entries(src, tree)] for src in sources]
    regular = [path for entries in walked for _, st, path in entries if stat.S_ISREG(st.st_mode)]
    sizes = {path: st.st_size for entries in walked for _, st, path in entries if stat.S_ISREG(st.st_mode)}
    contents: dict[Path, bytes] = {}
    unknown = []
    for path in regular:
        known = digest_of(path)
        if known is not None:
            contents[path] = bytes.fromhex(known)
        else:
            unknown.append(path)
    size = sum(sizes[p] for p in unknown)
    if size > _PARALLEL_ABOVE and len(unknown) > 1:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            contents.update(zip(unknown, pool.map(_file_digest, unknown), strict=True))
    else:
        contents.update((p, _file_digest(p)) for p in unknown)
    total = hashlib.sha256()
    single = ""
    for entries in walked:
        h = hashlib.sha256()
        for rel, st, path in entries:
            kind = stat.S_IFMT(st.st_mode)
            link = tree.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            h.update(f"{rel}\0{kind}\0{stat.S_IMODE(st.st_mode):o}\0{link}\0".encode("utf-8", "surrogateescape"))
            if stat.S_ISREG(st.st_mode):
                h.update(contents[path])
                h.update(b"\0")
        total.update(h.digest())
        single = h.hexdigest()
    if len(sources) == 1:
        kind_name = "dir" if stat.S_ISDIR(tree.lstat(sources[0]).st_mode) else "file"
        return f"{kind_name}:{single}"
    return f"multi:{total.hexdigest()}"


def _file_digest(path: Path) -> bytes:
    content = hashlib.sha256()
    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as f:
        while chunk := f.read(_CHUNK):
            content.update(chunk)
    return content.digest()
