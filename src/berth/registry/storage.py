"""Registry storage: repositories, their blob links, manifests, tags, referrers and upload sessions.

The HTTP layer asks for the narrow Protocols below (STYLE.md §4); `FilesystemStorage` implements them all
on a local directory, and an S3-compatible backend can implement the same ones later (its `blob_path`
would become a redirect URL). Layout under the root:

    content/                                  berth's BlobStore: every blob and manifest, verified on commit
    repositories/<name>/_layers/<hex>         empty link: the repository may serve this blob
    repositories/<name>/_manifests/revisions/<hex>    the manifest's media type (one line)
    repositories/<name>/_manifests/tags/<tag>         the digest the tag points to
    repositories/<name>/_referrers/<subject hex>/<hex>  the referrer's descriptor (JSON)
    uploads/<id>.json                         an upload session: repository and start time
    registry.lock                             shared by writers, exclusive for gc (gc.py)

Repository components never start with '_', so the `_layers`-style directories cannot clash with a
nested repository. Every state file is written atomically; names are checked (names.py) before they
become paths.
May import: berth.content, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from berth.content import BlobStore, BlobWriter
from berth.errors import InvalidArgument, NotFound, Unavailable
from berth.oci.digest import Digest
from berth.registry.manifests import ManifestInfo, parse_manifest
from berth.registry.names import RepoName, Tag, UploadId
from berth.util.atomic import write_atomic
from berth.util.locks import file_lock

_NAME_COMPONENT_DIRS = ("_layers", "_manifests", "_referrers")


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UploadSession:
    id: UploadId
    repo: RepoName
    started: float


class UploadWriter(Protocol):
    """The partial blob of one upload session (berth.content's BlobWriter is one)."""

    @property
    def offset(self) -> int: ...
    def write(self, data: bytes | bytearray | memoryview) -> int: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class BlobStorage(Protocol):
    def blob_size(self, repo: RepoName, digest: Digest) -> int: ...
    def blob_path(self, repo: RepoName, digest: Digest) -> Path: ...  # for sendfile; an object store: a URL
    def read_blob(self, repo: RepoName, digest: Digest, limit: int) -> bytes: ...
    def link_blob(self, repo: RepoName, digest: Digest) -> None: ...
    def unlink_blob(self, repo: RepoName, digest: Digest) -> None: ...


class UploadStorage(Protocol):
    def start_upload(self, repo: RepoName) -> UploadSession: ...
    def upload_session(self, repo: RepoName, upload: UploadId) -> UploadSession: ...
    def open_upload(self, upload: UploadId) -> UploadWriter: ...
    def commit_upload(self, repo: RepoName, writer: UploadWriter, digest: Digest) -> Digest: ...
    def upload_offset(self, upload: UploadId) -> int: ...
    def drop_upload(self, upload: UploadId) -> None: ...


class UploadExpiry(Protocol):
    def upload_sessions(self) -> Iterator[tuple[UploadId, float]]: ...
    def touch_upload(self, upload: UploadId) -> None: ...
    def drop_upload(self, upload: UploadId) -> None: ...


class ManifestStorage(Protocol):
    def get_manifest(self, repo: RepoName, ref: Tag | Digest) -> StoredManifest: ...
    def put_manifest(self, repo: RepoName, tag: Tag | None, data: bytes, info: ManifestInfo) -> Digest: ...
    def delete_manifest(self, repo: RepoName, ref: Tag | Digest) -> None: ...
    def tags(self, repo: RepoName) -> list[str]: ...
    def repositories(self) -> list[str]: ...
    def referrers(self, repo: RepoName, subject: Digest) -> list[dict[str, Any]]: ...


class RegistryStorage(BlobStorage, UploadStorage, UploadExpiry, ManifestStorage, Protocol):
    """Everything the HTTP layer uses; a backend implements this (gc is per backend)."""


class FilesystemStorage:
    """All three storage seams on a local directory; safe for one server process plus `gc` runs."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.blobs = BlobStore(root / "content", clock)
        self._repos = root / "repositories"
        self._uploads = root / "uploads"
        self.lock_path = root / "registry.lock"
        self._clock = clock
        for d in (self._repos, self._uploads):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- paths --------------------------------------------------------------------------------------

    def _repo_dir(self, repo: RepoName) -> Path:
        return self._repos.joinpath(*repo.components)

    def _layer_link(self, repo: RepoName, digest: Digest) -> Path:
        return self._repo_dir(repo) / "_layers" / digest.hex

    def _revision(self, repo: RepoName, digest: Digest) -> Path:
        return self._repo_dir(repo) / "_manifests" / "revisions" / digest.hex

    def _tag_file(self, repo: RepoName, tag: Tag) -> Path:
        return self._repo_dir(repo) / "_manifests" / "tags" / tag.value

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) around every check-then-link, so a gc run sees all of it or none of it."""
        with file_lock(self.lock_path, shared=True):
            yield

    # -- blobs --------------------------------------------------------------------------------------

    def blob_size(self, repo: RepoName, digest: Digest) -> int:
        if not self._layer_link(repo, digest).exists():
            raise NotFound(f"blob {digest} is not in repository {repo}")
        return self.blobs.size(digest)

    def blob_path(self, repo: RepoName, digest: Digest) -> Path:
        if not self._layer_link(repo, digest).exists():
            raise NotFound(f"blob {digest} is not in repository {repo}")
        return self.blobs.path(digest)

    def read_blob(self, repo: RepoName, digest: Digest, limit: int) -> bytes:
        if not self._layer_link(repo, digest).exists():
            raise NotFound(f"blob {digest} is not in repository {repo}")
        return self.blobs.read_bytes(digest, limit)

    def link_blob(self, repo: RepoName, digest: Digest) -> None:
        """Make a committed blob servable from repo (a cross-repository mount)."""
        with self.writing():
            self._link(repo, digest)

    def commit_upload(self, repo: RepoName, writer: UploadWriter, digest: Digest) -> Digest:
        """Verify and commit an upload's blob and link it into repo, as one step for a concurrent gc.

        DigestMismatch (and the partial dropped) when the bytes are not `digest`.
        """
        if not isinstance(writer, BlobWriter):
            raise InvalidArgument(f"not a writer of this storage: {type(writer).__name__}")
        # The digest is known only now, at the end of the upload: commit() checks it.
        writer.expected = digest
        with self.writing():
            info = writer.commit()
            self._link(repo, info.digest)
        return info.digest

    def _link(self, repo: RepoName, digest: Digest) -> None:
        if not self.blobs.has(digest):
            raise NotFound(f"blob {digest} is not in the store")
        link = self._layer_link(repo, digest)
        link.parent.mkdir(parents=True, exist_ok=True)
        # An empty file: O_CREAT alone is atomic, and concurrent links of one blob must not race on a temp name.
        os.close(os.open(link, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
        os.utime(link)  # a fresh mtime: gc keeps young links (gc.py)

    def unlink_blob(self, repo: RepoName, digest: Digest) -> None:
        try:
            self._layer_link(repo, digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in repository {repo}") from None

    def linked_blobs(self, repo: RepoName) -> Iterator[tuple[Digest, float]]:
        """Each blob linked into repo, with the time it was linked."""
        layers = self._repo_dir(repo) / "_layers"
        with contextlib.suppress(FileNotFoundError), os.scandir(layers) as it:
            for e in it:
                if Digest.is_valid("sha256:" + e.name):
                    yield Digest("sha256", e.name), e.stat(follow_symlinks=False).st_mtime

    # -- uploads ------------------------------------------------------------------------------------

    def start_upload(self, repo: RepoName) -> UploadSession:
        session = UploadSession(UploadId(uuid.uuid4().hex), repo, self._clock())
        write_atomic(self._uploads / f"{session.id}.json",
                     json.dumps({"repository": repo.value, "started": session.started}).encode(), durable=False)
        return session

    def upload_session(self, repo: RepoName, upload: UploadId) -> UploadSession:
        try:
            raw = json.loads((self._uploads / f"{upload}.json").read_bytes())
        except FileNotFoundError:
            raise NotFound(f"upload {upload} not found (finished, cancelled or expired)") from None
        except ValueError as exc:
            raise NotFound(f"upload {upload} has an unreadable session file") from exc
        if raw.get("repository") != repo.value:
            raise NotFound(f"upload {upload} does not belong to repository {repo}")
        return UploadSession(upload, repo, float(raw.get("started", 0.0)))

    def open_upload(self, upload: UploadId) -> BlobWriter:
        """The session's partial blob, locked (Unavailable if another writer has it); resumable, so closing
        it keeps the bytes for the next request."""
        return self.blobs.writer(f"upload-{upload}", resumable=True, wait=False)

    def upload_offset(self, upload: UploadId) -> int:
        try:
            return self.blobs.partial_size(f"upload-{upload}")
        except NotFound:  # no bytes yet
            return 0

    def drop_upload(self, upload: UploadId) -> None:
        """Forget the session and its partial (one whose writer is open elsewhere is left to gc)."""
        (self._uploads / f"{upload}.json").unlink(missing_ok=True)
        with contextlib.suppress(Unavailable):
            self.open_upload(upload).abort()

    def upload_sessions(self) -> Iterator[tuple[UploadId, float]]:
        """Each session on disk with the time it was last touched."""
        with os.scandir(self._uploads) as it:
            for e in it:
                stem, dot, ext = e.name.partition(".")
                if ext == "json" and dot:
                    try:
                        yield UploadId.parse(stem), e.stat().st_mtime
                    except (InvalidArgument, FileNotFoundError):
                        continue

    def touch_upload(self, upload: UploadId) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._uploads / f"{upload}.json")

    # -- manifests ----------------------------------------------------------------------------------

    def resolve(self, repo: RepoName, ref: Tag | Digest) -> Digest:
        if isinstance(ref, Digest):
            return ref
        try:
            return Digest.parse(self._tag_file(repo, ref).read_text().strip())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"manifest unknown: no tag {ref} in repository {repo}") from None

    def get_manifest(self, repo: RepoName, ref: Tag | Digest) -> StoredManifest:
        digest = self.resolve(repo, ref)
        try:
            media_type = self._revision(repo, digest).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"manifest unknown: {digest} is not in repository {repo}") from None
        return StoredManifest(digest, media_type, self.blobs.read_bytes(digest))

    def put_manifest(self, repo: RepoName, tag: Tag | None, data: bytes, info: ManifestInfo) -> Digest:
        """Store a parsed manifest whose references are checked here, under the writers' lock.

        NotFound names the first referenced blob (or child manifest) the repository does not have.
        """
        with self.writing(), self.blobs.lease() as lease:
            for ref in info.blobs:
                lease.add(ref)  # before the check: a concurrent gc then keeps it
                if not self._layer_link(repo, ref).exists() or not self.blobs.has(ref):
                    raise NotFound(f"blob {ref} referenced by the manifest is not in repository {repo}")
            for ref in info.manifests:
                lease.add(ref)
                if not self._revision(repo, ref).exists() or not self.blobs.has(ref):
                    raise NotFound(f"manifest {ref} referenced by the index is not in repository {repo}")
            digest = self.blobs.put_bytes(data, lease=lease)
            revision = self._revision(repo, digest)
            revision.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(revision, info.media_type.encode() + b"\n")
            if info.subject is not None:
                ref_file = self._repo_dir(repo) / "_referrers" / info.subject.hex / digest.hex
                ref_file.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(ref_file, json.dumps(info.referrer_descriptor(digest, len(data))).encode())
            if tag is not None:
                tag_file = self._tag_file(repo, tag)
                tag_file.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(tag_file, str(digest).encode() + b"\n")
        return digest

    def delete_manifest(self, repo: RepoName, ref: Tag | Digest) -> None:
        """A tag: untag it. A digest: drop the revision, every tag pointing at it, and its referrer entry."""
        if isinstance(ref, Tag):
            try:
                self._tag_file(repo, ref).unlink()
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"manifest unknown: no tag {ref} in repository {repo}") from None
            return
        stored = self.get_manifest(repo, ref)
        for name in self.tags(repo):
            tag = Tag(name)
            with contextlib.suppress(NotFound, InvalidArgument):
                if self.resolve(repo, tag) == ref:
                    self._tag_file(repo, tag).unlink(missing_ok=True)
        with contextlib.suppress(InvalidArgument):
            subject = parse_manifest(stored.data, stored.media_type).subject
            if subject is not None:
                (self._repo_dir(repo) / "_referrers" / subject.hex / ref.hex).unlink(missing_ok=True)
        self._revision(repo, ref).unlink(missing_ok=True)

    def revisions(self, repo: RepoName) -> Iterator[Digest]:
        revdir = self._repo_dir(repo) / "_manifests" / "revisions"
        with contextlib.suppress(FileNotFoundError), os.scandir(revdir) as it:
            for e in it:
                if Digest.is_valid("sha256:" + e.name):
                    yield Digest("sha256", e.name)

    def tags(self, repo: RepoName) -> list[str]:
        if not self._repo_dir(repo).is_dir():
            raise NotFound(f"repository {repo} not known to this registry")
        try:
            names = os.listdir(self._repo_dir(repo) / "_manifests" / "tags")
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith("."))

    def repositories(self) -> list[str]:
        """Every repository with at least one manifest or blob, in lexical order."""
        found: list[str] = []
        for dirpath, dirnames, _ in os.walk(self._repos):
            if any(d in _NAME_COMPONENT_DIRS for d in dirnames):
                found.append(os.path.relpath(dirpath, self._repos))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    def referrers(self, repo: RepoName, subject: Digest) -> list[dict[str, Any]]:
        refdir = self._repo_dir(repo) / "_referrers" / subject.hex
        out: list[dict[str, Any]] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(refdir) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.startswith("."):
                    continue  # an atomic write in progress
                with contextlib.suppress(FileNotFoundError, ValueError):
                    out.append(json.loads(Path(e.path).read_bytes()))
        return out
