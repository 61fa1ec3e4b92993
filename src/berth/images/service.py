"""The image service: load, save, import, tag, remove, inspect, history, list, prune.

It ties the content store (blobs), the snapshotter (unpacked layers, one per chain id) and the image records
together. An image becomes visible only after every blob is verified and every layer is unpacked; a failed
operation removes what it added (blobs through gc, which spares what other operations hold by lease).
May import: berth.snapshots, berth.content, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from berth.content.store import BlobStore
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.images.archive import ArchivedImage, SavedImage, read_archive, write_archive
from berth.images.changes import apply_change
from berth.images.compression import decompressed
from berth.images.records import ImageRecord, ImageRecords
from berth.oci.config import ContainerConfig, History, ImageConfig
from berth.oci.descriptor import Descriptor, Platform
from berth.oci.digest import Digest
from berth.oci.manifest import Manifest
from berth.oci.mediatype import MediaType
from berth.oci.reference import Reference
from berth.snapshots.stream import Compression, detect_compression

UNPACK_WORKERS = 4


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One line of `docker history`."""

    image_id: Digest | None        # None: no local image made this step ('<missing>')
    entry: History
    size: int                      # of the layer the step made
    tags: tuple[str, ...] = ()     # the image's full references


class LayerStore(Protocol):
    """What the image service needs of the snapshotter."""

    def has(self, chain_id: Digest) -> bool: ...
    def unpack(self, chain_id: Digest, parent: Digest | None, layer: BinaryIO,
               compression: Compression | None, expected_diff_id: Digest,
               wait_parent: Callable[[], None] | None = None) -> object: ...
    def lowerdirs(self, chain_id: Digest) -> list[Path]: ...
    def remove_layer(self, chain_id: Digest) -> None: ...


def docker_size(top: Path) -> int:
    """Docker's layer size: st_size of every non-directory entry, hardlinked inodes once (moby's directory.Size)."""
    seen: set[int] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*filenames, *dirnames):
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISDIR(st.st_mode) or not st.st_size or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_size
    return total


@dataclass(frozen=True, slots=True)
class ImageView:
    record: ImageRecord
    config: ImageConfig
    manifest: Manifest
    size: int
    layer_sizes: tuple[int, ...]

    @property
    def chain_ids(self) -> list[Digest]:
        return self.config.chain_ids


@dataclass(frozen=True, slots=True)
class Loaded:
    image_id: Digest
    tags: tuple[str, ...]     # familiar names, as `docker load` prints them


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


class ImageService:
    def __init__(self, blobs: BlobStore, layers: LayerStore, records: ImageRecords,
                 containers_using: Callable[[Digest], list[tuple[str, bool]]] = lambda _: [],
                 clock: Callable[[], float] = time.time) -> None:
        self._blobs, self._layers, self._records = blobs, layers, records
        self._containers_using = containers_using
        self._clock = clock
        self._sizes: dict[Digest, int] = {}   # layers are immutable: a size computed once stays true

    def layer_size(self, chain_id: Digest) -> int:
        size = self._sizes.get(chain_id)
        if size is None:
            size = self._sizes[chain_id] = docker_size(self._layers.lowerdirs(chain_id)[0])
        return size

    # -- reading ----------------------------------------------------------------------------------------

    def resolve(self, name: str) -> ImageRecord:
        return self._records.resolve(name)

    def view(self, record: ImageRecord) -> ImageView:
        manifest = Manifest.parse(self._blobs.read_bytes(record.manifest))
        config = ImageConfig.parse(self._blobs.read_bytes(record.id, 20 * 1024 * 1024))
        sizes = tuple(self.layer_size(c) if self._layers.has(c) else 0 for c in config.chain_ids)
        return ImageView(record, config, manifest, sum(sizes), sizes)

    def inspect(self, name: str) -> ImageView:
        return self.view(self.resolve(name))

    def raw_config(self, record: ImageRecord) -> bytes:
        return self._blobs.read_bytes(record.id, 20 * 1024 * 1024)

    def list_images(self) -> list[ImageView]:
        """Newest first by the image's own creation time, as dockerd sorts them."""
        views = [self.view(r) for r in self._records.all()]
        return sorted(views, key=lambda v: (v.config.created_unix, v.record.added), reverse=True)

    # -- creating ---------------------------------------------------------------------------------------

    def load(self, stream: BinaryIO, on_loaded: Callable[[Loaded], None] | None = None) -> list[Loaded]:
        """`docker load`: every image in a docker-archive or OCI-layout tar (plain or compressed)."""
        created: list[Digest] = []
        with self._blobs.lease() as lease:
            try:
                found = read_archive(stream, _LeasedStore(self._blobs, lease), on_blob=lease.add)
                if not found:
                    raise InvalidArgument("the image archive holds no images")
                out = []
                for image in found:
                    loaded = self._register(image, lease, created)
                    out.append(loaded)
                    if on_loaded is not None:
                        on_loaded(loaded)
            except BaseException:
                lease.release()
                self._drop_layers(created)
                self.collect_garbage()
                raise
        self.collect_garbage()   # docker-archive's per-layer json/VERSION files were ingested too
        return out

    def _register(self, image: ArchivedImage, lease: Lease, created: list[Digest]) -> Loaded:
        config = ImageConfig.parse(self._blobs.read_bytes(image.config, 20 * 1024 * 1024))
        if len(config.diff_ids) != len(image.layers):
            raise InvalidArgument(f"image {image.config} has {len(image.layers)} layers but its config lists "
                                  f"{len(config.diff_ids)} diff_ids")
        tags = [_parse_tag(t) for t in image.tags]
        self._unpack(config, image.layers, created)
        manifest_digest = image.manifest
        if manifest_digest is None:
            manifest = Manifest(MediaType.OCI_MANIFEST,
                                Descriptor(MediaType.OCI_CONFIG, image.config, self._blobs.size(image.config)),
                                tuple(Descriptor(_layer_type(self._blobs, d.digest), d.digest, d.size)
                                      for d in image.layers))
            manifest_digest = self._blobs.put_bytes(manifest.to_bytes(), lease=lease)
        self._records.add(image.config, manifest_digest, tags)
        return Loaded(image.config, tuple(t.familiar for t in tags))

    def register_manifest(self, manifest_digest: Digest, tags: Sequence[Reference] = (),
                          repo_digest: str | None = None) -> Digest:
        """Make an image of a manifest whose config and layer blobs are all in the content store already (a pull):
        unpack the layers it lacks, then record it. Returns the image id. Nothing is recorded if a step fails."""
        manifest = Manifest.parse(self._blobs.read_bytes(manifest_digest))
        config = ImageConfig.parse(self._blobs.read_bytes(manifest.config.digest, 20 * 1024 * 1024))
        if len(config.diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"manifest {manifest_digest} has {len(manifest.layers)} layers but its config "
                                  f"lists {len(config.diff_ids)} diff_ids")
        created: list[Digest] = []
        try:
            self._unpack(config, manifest.layers, created)
            self._records.add(manifest.config.digest, manifest_digest, list(tags), repo_digest=repo_digest)
        except BaseException:
            self._drop_layers(created)
            raise
        return manifest.config.digest

    def _unpack(self, config: ImageConfig, layers: Sequence[Descriptor], created: list[Digest]) -> None:
        """Unpack the layers an image lacks; `created` collects the ones this call made. Layers extract in
        parallel (file creation is the kernel's work, and it runs on every core) and commit bottom up."""
        todo: list[tuple[Digest, Digest | None, Digest, Descriptor]] = []
        parent: Digest | None = None
        for chain_id, diff_id, layer in zip(config.chain_ids, config.diff_ids, layers, strict=True):
            if not self._layers.has(chain_id):
                todo.append((chain_id, parent, diff_id, layer))
            parent = chain_id
        if not todo:
            return
        futures: dict[Digest, Future[object]] = {}
        with ThreadPoolExecutor(max_workers=min(UNPACK_WORKERS, len(todo)), thread_name_prefix="unpack") as pool:
            for chain_id, parent, diff_id, layer in todo:
                futures[chain_id] = pool.submit(self._unpack_one, chain_id, parent, diff_id, layer.digest,
                                                futures.get(parent) if parent is not None else None)
        failure: BaseException | None = None
        for chain_id, *_ in todo:
            error = futures[chain_id].exception()
            if error is None:
                created.append(chain_id)
            elif failure is None:
                failure = error
        if failure is not None:
            raise failure

    def _unpack_one(self, chain_id: Digest, parent: Digest | None, diff_id: Digest, blob: Digest,
                    parent_job: Future[object] | None) -> object:
        def wait_parent() -> None:
            if parent_job is not None:
                parent_job.result()   # the parent's error, if it failed, fails this layer too
        with self._blobs.open(blob) as f:
            return self._layers.unpack(chain_id, parent, f, None, diff_id, wait_parent)

    def _drop_layers(self, created: list[Digest]) -> None:
        """Undo the unpacks of a failed operation, top down, sparing layers another image uses by now."""
        in_use = self._chain_ids_in_use()
        for chain_id in reversed(created):
            if chain_id not in in_use:
                try:
                    self._layers.remove_layer(chain_id)
                except (Conflict, NotFound):
                    pass

    def import_rootfs(self, stream: BinaryIO, tag: Reference | None = None, changes: Sequence[str] = (),
                      message: str = "", source: str = "-", platform: Platform | None = None,
                      base: ContainerConfig | None = None) -> Digest:
        """`docker import`: a root filesystem tar (plain or compressed) as a one-layer image."""
        config = base or ContainerConfig()
        for line in changes:
            config = apply_change(config, line)
        plat = platform or Platform.host()
        created: list[Digest] = []
        with self._blobs.lease() as lease:
            try:
                with decompressed(stream) as plain:
                    info = self._blobs.ingest(plain, lease=lease)
                diff_id = info.digest
                now = rfc3339(self._clock())
                image_config = ImageConfig(plat.architecture, plat.os, (diff_id,), config, now,
                                           variant=plat.variant,
                                           history=(History(now, "", "", message or f"Imported from {source}"),),
                                           comment=message)
                self._unpack(image_config, [Descriptor(MediaType.OCI_LAYER, diff_id, info.size)], created)
                image_id = self._blobs.put_bytes(image_config.to_bytes(), lease=lease)
                manifest = Manifest(MediaType.OCI_MANIFEST,
                                    Descriptor(MediaType.OCI_CONFIG, image_id, self._blobs.size(image_id)),
                                    (Descriptor(MediaType.OCI_LAYER, diff_id, info.size),))
                manifest_digest = self._blobs.put_bytes(manifest.to_bytes(), lease=lease)
                self._records.add(image_id, manifest_digest, [tag] if tag else [])
                return image_id
            except BaseException:
                lease.release()
                self._drop_layers(created)
                self.collect_garbage()
                raise

    def commit(self, parent: ImageRecord, layer: BinaryIO, config: ContainerConfig, created_by: str,
               comment: str = "", author: str = "", tag: Reference | None = None) -> Digest:
        """`docker commit`: the parent image plus one layer (a plain tar stream), with the given config."""
        base = ImageConfig.parse(self.raw_config(parent))
        parent_manifest = Manifest.parse(self._blobs.read_bytes(parent.manifest))
        created: list[Digest] = []
        with self._blobs.lease() as lease:
            try:
                info = self._blobs.ingest(layer, lease=lease)
                now = rfc3339(self._clock())
                image_config = replace(base, diff_ids=base.diff_ids + (info.digest,), config=config, created=now,
                                       author=author or base.author, comment=comment,
                                       history=base.history + (History(now, created_by, author, comment),))
                layers = (*parent_manifest.layers, Descriptor(MediaType.OCI_LAYER, info.digest, info.size))
                self._unpack(image_config, layers, created)
                image_id = self._blobs.put_bytes(image_config.to_bytes(), lease=lease)
                manifest = Manifest(MediaType.OCI_MANIFEST,
                                    Descriptor(MediaType.OCI_CONFIG, image_id, self._blobs.size(image_id)), layers)
                manifest_digest = self._blobs.put_bytes(manifest.to_bytes(), lease=lease)
                self._records.add(image_id, manifest_digest, [tag] if tag else [], parent=parent.id)
                return image_id
            except BaseException:
                lease.release()
                self._drop_layers(created)
                self.collect_garbage()
                raise

    def tag(self, name: str, target: Reference) -> ImageRecord:
        rec = self.resolve(name)
        if target.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target.familiar}")
        rec, _ = self._records.add(rec.id, rec.manifest, [target])
        return rec

    # -- saving -----------------------------------------------------------------------------------------

    def save(self, names: Sequence[str], out: BinaryIO) -> None:
        chosen: dict[Digest, tuple[ImageRecord, list[str]]] = {}
        for name in names:
            rec = self.resolve(name)
            entry = chosen.setdefault(rec.id, (rec, []))
            try:
                ref = Reference.parse(name)
            except InvalidArgument:
                ref = None
            if ref is not None and ref.digest is None and str(ref) in rec.tags:
                entry[1].append(str(ref))
        saved = []
        for rec, tags in chosen.values():
            manifest = Manifest.parse(self._blobs.read_bytes(rec.manifest))
            saved.append(SavedImage(rec.manifest, manifest.media_type, rec.id,
                                    tuple(d.digest for d in manifest.layers), tuple(tags),
                                    tuple(Reference.parse(t).familiar for t in tags)))
        write_archive(out, saved, self._blobs)

    # -- removing ---------------------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False, prune: bool = True) -> list[tuple[str, str]]:
        """`docker rmi`: ("Untagged", ref) and ("Deleted", id) events, with Docker's conflict rules."""
        rec = self.resolve(name)
        events: list[tuple[str, str]] = []
        quiet = False
        tag = _tag_named(name, rec)
        if tag is not None:
            if not force and _single_reference(rec):
                users = self._containers_using(rec.id)
                if users:
                    raise Conflict(f"conflict: unable to remove repository reference \"{name}\" (must force) - "
                                   f"container {users[0][0][:12]} is using its referenced image {rec.id.short}")
            rec = self._records.untag(rec.id, tag)
            events.append(("Untagged", Reference.parse(tag).familiar))
            if rec.tags or rec.repo_digests:
                return events
            quiet = True
        elif _single_reference(rec):
            self._check_conflicts(rec, soft=not force, active_reference=False)
            events.extend(self._untag_all(rec))
        try:
            self._check_conflicts(rec, soft=not force, active_reference=not force)
        except Conflict:
            if quiet:
                return events   # the tag is gone; the image stays, as Docker leaves it, dangling but used
            raise
        events.extend(self._untag_all(self._records.get(rec.id) or rec))
        self._records.remove(rec.id)
        events.append(("Deleted", str(rec.id)))
        if prune:
            events.extend(("Deleted", str(c)) for c in self._remove_unused_layers(rec))
            events.extend(self._prune_parents(rec.parent))
        self.collect_garbage()
        return events

    def _prune_parents(self, parent: Digest | None) -> list[tuple[str, str]]:
        """dockerd's rmi goes on up the untagged images a build left under the removed one, quietly: the first
        parent that is tagged, has another child or is used by a container ends it."""
        events: list[tuple[str, str]] = []
        while parent is not None:
            rec = self._records.get(parent)
            if rec is None or rec.tags or rec.repo_digests:
                break
            try:
                self._check_conflicts(rec, soft=True, active_reference=False)
            except Conflict:
                break
            self._records.remove(rec.id)
            events.append(("Deleted", str(rec.id)))
            events.extend(("Deleted", str(c)) for c in self._remove_unused_layers(rec))
            parent = rec.parent
        return events

    def _check_conflicts(self, rec: ImageRecord, soft: bool, active_reference: bool) -> None:
        def conflict(forced: bool, why: str) -> Conflict:
            return Conflict(f"conflict: unable to delete {rec.id.short} "
                            f"({'must be forced' if forced else 'cannot be forced'}) - {why}")
        if any(other.parent == rec.id for other in self._records.all()):
            raise conflict(False, "image has dependent child images")
        users = self._containers_using(rec.id)
        running = [cid for cid, is_running in users if is_running]
        if running:
            raise conflict(False, f"image is being used by running container {running[0][:12]}")
        if soft and users:
            raise conflict(True, f"image is being used by stopped container {users[0][0][:12]}")
        current = self._records.get(rec.id) or rec
        if active_reference and (current.tags or current.repo_digests):
            raise conflict(True, "image is referenced in multiple repositories")

    def _untag_all(self, rec: ImageRecord) -> list[tuple[str, str]]:
        events = []
        for ref in (*rec.tags, *rec.repo_digests):
            self._records.untag(rec.id, ref)
            events.append(("Untagged", Reference.parse(ref).familiar))
        return events

    def _remove_unused_layers(self, removed: ImageRecord) -> list[Digest]:
        config = ImageConfig.parse(self._blobs.read_bytes(removed.id, 20 * 1024 * 1024))
        in_use = self._chain_ids_in_use()
        gone = []
        for chain_id in reversed(config.chain_ids):
            if chain_id in in_use or not self._layers.has(chain_id):
                continue
            try:
                self._layers.remove_layer(chain_id)
            except Conflict:
                break  # a container's snapshot sits on it: keep it and everything below
            gone.append(chain_id)
        return gone

    def _chain_ids_in_use(self) -> set[Digest]:
        out: set[Digest] = set()
        for rec in self._records.all():
            try:
                out.update(ImageConfig.parse(self._blobs.read_bytes(rec.id, 20 * 1024 * 1024)).chain_ids)
            except NotFound:
                continue
        return out

    def prune(self, all_unused: bool = False,
              keep: Callable[[ImageView], bool] = lambda _: False) -> tuple[list[tuple[str, str]], int]:
        """Remove dangling images (or, with all_unused, every image no container uses)."""
        events: list[tuple[str, str]] = []
        reclaimed = 0
        for view in self.list_images():
            rec = view.record
            if (rec.tags and not all_unused) or self._containers_using(rec.id) or keep(view):
                continue
            before = view.size
            events.extend(self.remove(str(rec.id), force=True))
            reclaimed += before
        return events, reclaimed

    def collect_garbage(self) -> None:
        """Remove blobs no image references (and no live lease holds)."""
        roots: set[Digest] = set()
        for rec in self._records.all():
            roots.update((rec.id, rec.manifest))
            try:
                roots.update(d.digest for d in Manifest.parse(self._blobs.read_bytes(rec.manifest)).layers)
            except NotFound:
                continue
        self._blobs.gc(roots)

    def history(self, name: str) -> list[HistoryRow]:
        """Newest first, as dockerd: the rows get the ids (and tags) of the image and then of its parents, one
        per row, for as long as the parent chain goes on locally (a build's intermediate images); the rest, the
        history of a pulled or loaded base, has no image of its own (no image_id: '<missing>')."""
        view = self.inspect(name)
        entries = list(view.config.history) or [History(view.config.created, "", "", "")] * len(view.layer_sizes)
        sizes = iter(view.layer_sizes)
        rows = [HistoryRow(None, entry, 0 if entry.empty_layer else next(sizes, 0)) for entry in entries]
        rows.reverse()
        record: ImageRecord | None = view.record
        for i, row in enumerate(rows):
            if record is None:
                break
            rows[i] = replace(row, image_id=record.id, tags=record.tags)
            record = self._records.get(record.parent) if record.parent is not None else None
        return rows


class Lease(Protocol):
    def add(self, digest: Digest) -> None: ...
    def release(self) -> None: ...


class _LeasedStore:
    """The content store as read_archive sees it, with every ingested blob held by the load's lease."""

    def __init__(self, blobs: BlobStore, lease: Lease) -> None:
        self._blobs, self._lease = blobs, lease

    def ingest(self, stream: BinaryIO, expected: Digest | None = None,
               expected_size: int | None = None) -> tuple[Digest, int]:
        info = self._blobs.ingest(stream, expected, expected_size, lease=self._lease)
        return info.digest, info.size

    def open(self, digest: Digest) -> BinaryIO:
        return self._blobs.open(digest)

    def size(self, digest: Digest) -> int:
        return self._blobs.size(digest)

    def read_bytes(self, digest: Digest, limit: int) -> bytes:
        return self._blobs.read_bytes(digest, limit)


def _parse_tag(text: str) -> Reference:
    ref = Reference.parse(text)
    if ref.digest is not None:
        raise InvalidArgument(f"image archive tags an image with a digest reference {text!r}")
    return ref


_LAYER_TYPES = {Compression.GZIP: MediaType.OCI_LAYER_GZIP, Compression.ZSTD: MediaType.OCI_LAYER_ZSTD,
                Compression.NONE: MediaType.OCI_LAYER}


def _layer_type(blobs: BlobStore, digest: Digest) -> MediaType:
    with blobs.open(digest) as f:
        return _LAYER_TYPES[detect_compression(f.read(4))]


def _is_id_prefix(name: str, rec: ImageRecord) -> bool:
    hexpart = name.removeprefix("sha256:")
    return rec.id.hex.startswith(hexpart)


def _tag_named(name: str, rec: ImageRecord) -> str | None:
    """The full tag `name` refers to, if it names the image by tag rather than by id."""
    if _is_id_prefix(name, rec):
        return None
    try:
        ref = Reference.parse(name)
    except InvalidArgument:
        return None
    return str(ref) if ref.digest is None and str(ref) in rec.tags else None


def _single_reference(rec: ImageRecord) -> bool:
    """Docker's isSingleReference: at most one tag, and any digest references in that tag's repository."""
    refs = [Reference.parse(r) for r in (*rec.tags, *rec.repo_digests)]
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0]
    canonical = {r.name for r in refs if r.digest is not None}
    return len(canonical) == 1 and single.name in canonical


def bootstrap(service: ImageService, base: str, work: Path, tag: Reference | None,
              progress: Callable[[str], None] = lambda _: None) -> Digest:
    """`berth image bootstrap busybox|debian[:suite]`: a base image made offline from the host's own packages."""
    from berth.images import bootstrap as roots
    from berth.snapshots.diff import write_tree

    name, _, suite = base.partition(":")
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=work))
    try:
        rootfs = tmp / "rootfs"
        if name == "busybox" and not suite:
            progress("building a busybox root filesystem from /bin/busybox")
            spec = roots.busybox_rootfs(rootfs)
        elif name == "debian":
            progress(f"building a Debian {suite or 'bookworm'} root filesystem from this host's Debian mirror")
            spec = roots.debian_rootfs(rootfs, suite or "bookworm")
        else:
            raise InvalidArgument(f"unknown base {base!r}: choose busybox or debian[:suite] (e.g. debian:bookworm)")
        layer = tmp / "layer.tar"
        progress("writing the layer")
        with open(layer, "wb") as out:
            write_tree(spec.path, out)
        progress("importing the layer")
        with open(layer, "rb") as f:
            return service.import_rootfs(f, tag or Reference.parse(base if ":" in base else f"{base}:latest"),
                                         message=spec.comment, source=f"berth image bootstrap {base}",
                                         platform=spec.platform, base=spec.config)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
