"""Garbage collection of a registry's storage, safe while the server runs.

Mark: every manifest revision of every repository, and what it references (config, layers, an index's
children). Also kept: blobs linked into a repository within the last `grace` seconds (a push uploads its
blobs before its manifest), and whatever a live lease holds (a manifest PUT in progress leases the blobs
it checks). Sweep: every other blob, stale upload partials, and links to blobs no longer stored.
The mark and the sweep run under registry.lock held exclusively; the server's check-then-link steps hold it
shared (storage.FilesystemStorage.writing), so a push sees the state before a gc run or after it.
May import: berth.content, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from berth.errors import BerthError
from berth.oci.digest import Digest
from berth.registry.manifests import parse_manifest
from berth.registry.names import RepoName
from berth.registry.storage import FilesystemStorage
from berth.util.locks import file_lock


@dataclass(frozen=True, slots=True)
class GcReport:
    kept: int
    removed: tuple[Digest, ...]
    bytes_freed: int
    links_removed: int
    uploads_removed: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kept": self.kept, "removed": [str(d) for d in self.removed], "bytes_freed": self.bytes_freed,
                "links_removed": self.links_removed, "uploads_removed": list(self.uploads_removed)}


def mark(storage: FilesystemStorage, grace: float, now: float) -> set[Digest]:
    keep: set[Digest] = set()
    for name in storage.repositories():
        repo = RepoName(name)
        for digest in storage.revisions(repo):
            keep.add(digest)
            with contextlib.suppress(BerthError, OSError):
                stored = storage.get_manifest(repo, digest)
                info = parse_manifest(stored.data, stored.media_type)
                keep.update(info.blobs)
                keep.update(info.manifests)
        for digest, linked in storage.linked_blobs(repo):
            if now - linked < grace:
                keep.add(digest)
    return keep


def collect(storage: FilesystemStorage, grace: float = 3600.0, dry_run: bool = False,
            clock: Callable[[], float] = time.time) -> GcReport:
    with file_lock(storage.lock_path):
        keep = mark(storage, grace, clock())
        if dry_run:
            doomed = tuple(sorted(d for d in storage.blobs.walk() if d not in keep))
            return GcReport(len(keep), doomed, sum(storage.blobs.size(d) for d in doomed), 0, ())
        result = storage.blobs.gc(keep, stale_after=grace)
        links = 0
        gone = set(result.removed)
        for name in storage.repositories():
            repo = RepoName(name)
            for digest, _ in list(storage.linked_blobs(repo)):
                if digest in gone or not storage.blobs.has(digest):
                    with contextlib.suppress(BerthError):
                        storage.unlink_blob(repo, digest)
                        links += 1
    return GcReport(len(keep), result.removed, result.bytes, links, result.ingests_removed)


def report_text(report: GcReport) -> str:
    return json.dumps(report.to_json(), indent=1)
