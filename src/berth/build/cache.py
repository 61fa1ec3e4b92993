"""The build cache: which image a step gave, keyed by its parent image, its instruction and its sources.

Like Docker's classic builder, a cache hit is an existing image (every step is committed as one), so the cache
survives a daemon restart. The index is one JSON document, `<root>/cache.json`: sha256(parent id, instruction
text with build args expanded, checksum of the files it copies) -> image id, rewritten atomically under an
flock. An entry whose image was removed is a miss (and is forgotten when the index grows large).

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from berth.oci.digest import Digest
from berth.util.atomic import read_json, write_json_atomic
from berth.util.locks import file_lock


def cache_key(parent: Digest | None, instruction: str, checksum: str = "") -> str:
    h = hashlib.sha256()
    for part in (str(parent or "scratch"), instruction, checksum):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class BuildCache:
    def __init__(self, root: Path, exists: Callable[[Digest], bool]) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path = root / "cache.json"
        self._lock = root / "cache.lock"
        self._exists = exists
        self._memo: tuple[tuple[int, int, int], dict[str, str]] | None = None

    def _read(self) -> dict[str, str]:
        """The index (not to be changed in place); parsed again only when the file changed (it is replaced
        whole: a new inode, mtime or size tells), not at every step of every build."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._memo is not None and self._memo[0] == stamp:
            return self._memo[1]
        raw = read_json(self._path)
        entries = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        self._memo = (stamp, entries)
        return entries

    def lookup(self, key: str) -> Digest | None:
        with file_lock(self._lock, shared=True):
            found = self._read().get(key)
        if found is None:
            return None
        image = Digest.parse(found)
        return image if self._exists(image) else None

    def store(self, key: str, image: Digest) -> None:
        with file_lock(self._lock):
            entries = dict(self._read())
            if len(entries) > 20_000:   # forget entries of removed images, now and then rather than each time
                entries = {k: v for k, v in entries.items() if self._exists(Digest.parse(v))}
            entries[key] = str(image)
            write_json_atomic(self._path, entries)
            st = os.stat(self._path)
            self._memo = ((st.st_ino, st.st_mtime_ns, st.st_size), entries)
