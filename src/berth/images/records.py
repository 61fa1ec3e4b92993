"""The image records: which images exist (by id = config digest) and which names point at them.

One JSON document, `<root>/images/db.json`, rewritten atomically under an flock, so a crash leaves the old
set of images or the new one; an image becomes visible only when its record is written, after all of its
blobs and snapshots are committed.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.oci.digest import Digest
from berth.oci.reference import Reference, looks_like_id
from berth.util.atomic import read_json, write_json_atomic
from berth.util.locks import file_lock


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: Digest                       # the config digest, Docker's image id
    manifest: Digest                 # the manifest berth stores for it (synthesised for docker-archive loads)
    tags: tuple[str, ...] = ()       # full references, e.g. docker.io/library/busybox:latest
    repo_digests: tuple[str, ...] = ()
    added: float = 0.0               # when it was created locally (unix seconds)
    parent: Digest | None = None     # the image a build or commit started from (Docker's Parent)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ImageRecord:
        parent = raw.get("parent")
        return cls(Digest.parse(raw["id"]), Digest.parse(raw["manifest"]), tuple(raw.get("tags") or ()),
                   tuple(raw.get("repo_digests") or ()), float(raw.get("added") or 0.0),
                   Digest.parse(parent) if parent else None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "manifest": str(self.manifest), "tags": list(self.tags),
                               "repo_digests": list(self.repo_digests), "added": self.added}
        if self.parent is not None:
            out["parent"] = str(self.parent)
        return out


@dataclass(slots=True)
class _Db:
    images: dict[Digest, ImageRecord] = field(default_factory=dict)

    def by_tag(self, full: str) -> ImageRecord | None:
        for rec in self.images.values():
            if full in rec.tags:
                return rec
        return None


class ImageRecords:
    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self._dir = root
        self._dir.mkdir(parents=True, exist_ok=True)
        self._path = self._dir / "db.json"
        self._lock = self._dir / "db.lock"
        self._clock = clock

    def _read(self) -> _Db:
        if not self._path.exists():
            return _Db()
        raw = read_json(self._path)
        return _Db({rec.id: rec for rec in (ImageRecord.from_json(r) for r in raw.get("images", []))})

    def _write(self, db: _Db) -> None:
        write_json_atomic(self._path, {"images": [r.to_json() for r in sorted(db.images.values(),
                                                                             key=lambda r: r.added)]})

    @contextmanager
    def _edit(self) -> Iterator[_Db]:
        with file_lock(self._lock):
            db = self._read()
            yield db
            self._write(db)

    # reading --------------------------------------------------------------------------------------------

    def all(self) -> list[ImageRecord]:
        with file_lock(self._lock, shared=True):
            return list(self._read().images.values())

    def get(self, image_id: Digest) -> ImageRecord | None:
        with file_lock(self._lock, shared=True):
            return self._read().images.get(image_id)

    def resolve(self, name: str) -> ImageRecord:
        """By full id, unique id prefix (with or without 'sha256:'), name[:tag] or name@digest, like Docker."""
        with file_lock(self._lock, shared=True):
            db = self._read()
        hexpart = name.removeprefix("sha256:")
        if looks_like_id(name):
            rec = db.images.get(Digest.from_hex(hexpart))
            if rec is not None:
                return rec
        try:
            ref = Reference.parse(name)
        except InvalidArgument:
            ref = None
        if ref is not None:
            if ref.digest is not None:
                for rec in db.images.values():
                    if ref.digest == rec.manifest and (rec.tags or rec.repo_digests) and (
                            any(t.startswith(ref.name + ":") for t in rec.tags) or
                            any(d.startswith(ref.name + "@") for d in rec.repo_digests)):
                        return rec
                    if f"{ref.name}@{ref.digest}" in rec.repo_digests:
                        return rec
            else:
                rec = db.by_tag(str(ref))
                if rec is not None:
                    return rec
        if 1 <= len(hexpart) < 64 and all(c in "0123456789abcdef" for c in hexpart):
            matches = [r for r in db.images.values() if r.id.hex.startswith(hexpart)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise Conflict(f"image id prefix {name!r} is ambiguous: it matches {len(matches)} images")
        raise NotFound(f"No such image: {name}")

    # writing --------------------------------------------------------------------------------------------

    def add(self, image_id: Digest, manifest: Digest, tags: list[Reference], parent: Digest | None = None,
            repo_digest: str | None = None) -> tuple[ImageRecord, list[str]]:
        """Record an image (or refresh it) and move the given tags onto it. Returns the record and the tags
        that were taken away from another image (which may now be dangling)."""
        moved: list[str] = []
        with self._edit() as db:
            rec = db.images.get(image_id) or ImageRecord(image_id, manifest, added=self._clock(), parent=parent)
            for ref in tags:
                full = str(ref)
                other = db.by_tag(full)
                if other is not None and other.id != image_id:
                    db.images[other.id] = replace(other, tags=tuple(t for t in other.tags if t != full))
                    moved.append(full)
                if full not in rec.tags:
                    rec = replace(rec, tags=rec.tags + (full,))
            if repo_digest and repo_digest not in rec.repo_digests:
                rec = replace(rec, repo_digests=rec.repo_digests + (repo_digest,))
            db.images[image_id] = rec
        return rec, moved

    def untag(self, image_id: Digest, full: str) -> ImageRecord:
        with self._edit() as db:
            rec = db.images.get(image_id)
            if rec is None:
                raise NotFound(f"No such image: {image_id}")
            rec = replace(rec, tags=tuple(t for t in rec.tags if t != full),
                          repo_digests=tuple(d for d in rec.repo_digests if not d.startswith(full + "@")))
            db.images[image_id] = rec
            return rec

    def remove(self, image_id: Digest) -> None:
        with self._edit() as db:
            db.images.pop(image_id, None)
