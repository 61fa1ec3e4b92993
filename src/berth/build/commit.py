"""A build step's result as an image: the parent's layers plus (maybe) one layer, the step's config and history.

Like Docker's classic builder, every step becomes an image (untagged, its parent recorded): that is what makes
the build cache persistent and what `docker history` of a build shows. A filesystem-changing step gives a
layer from its snapshot's upper directory, committed in place (Snapshotter.commit: nothing is unpacked again);
a metadata step gives an image with the same layers and an `empty_layer` history entry.

May import: berth.images, berth.snapshots, berth.content, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from berth.content.store import BlobStore
from berth.errors import NotFound
from berth.images.records import ImageRecords
from berth.images.service import ImageService, rfc3339
from berth.oci.config import ContainerConfig, History, ImageConfig
from berth.oci.descriptor import Descriptor, Platform
from berth.oci.digest import Digest
from berth.oci.manifest import Manifest
from berth.oci.mediatype import MediaType
from berth.oci.reference import Reference
from berth.snapshots.diff import write_diff
from berth.snapshots.store import Snapshotter


@dataclass(frozen=True, slots=True)
class StepImage:
    """An image a build stands on: its id (None for `scratch`), its config and its manifest's layers."""
    id: Digest | None
    config: ImageConfig
    layers: tuple[Descriptor, ...]

    @property
    def top_layer(self) -> Digest | None:
        chain = self.config.chain_ids
        return chain[-1] if chain else None

    @property
    def short_id(self) -> str:
        return self.id.hex[:12] if self.id is not None else ""


def scratch(platform: Platform | None = None) -> StepImage:
    plat = platform or Platform.host()
    return StepImage(None, ImageConfig(plat.architecture, plat.os, (), ContainerConfig(), variant=plat.variant), ())


class ImageWriter:
    def __init__(self, blobs: BlobStore, snapshots: Snapshotter, records: ImageRecords, images: ImageService,
                 clock: Callable[[], float] = time.time) -> None:
        self._blobs, self._snapshots, self._records, self._images = blobs, snapshots, records, images
        self._clock = clock

    def load(self, name: str) -> StepImage:
        """A local image by name or id (NotFound if there is none)."""
        rec = self._images.resolve(name)
        return self.by_id(rec.id)

    def by_id(self, image_id: Digest) -> StepImage:
        rec = self._records.get(image_id)
        if rec is None:
            raise NotFound(f"No such image: {image_id}")
        manifest = Manifest.parse(self._blobs.read_bytes(rec.manifest))
        config = ImageConfig.parse(self._images.raw_config(rec))
        if not all(self._snapshots.has(c) for c in config.chain_ids):
            raise NotFound(f"image {image_id} has layers that are not unpacked")
        return StepImage(rec.id, config, manifest.layers)

    def exists(self, image_id: Digest) -> bool:
        return self._records.get(image_id) is not None

    def commit(self, parent: StepImage, config: ContainerConfig, created_by: str, snapshot: str | None,
               container_config: dict[str, object] | None = None, author: str | None = None) -> StepImage:
        """A child of parent with config; snapshot (a prepared, unmounted snapshot key) becomes its new layer,
        or None for a metadata step. The snapshot is consumed either way (committed or removed)."""
        now = rfc3339(self._clock())
        base = parent.config
        with self._blobs.lease() as lease:
            layers = parent.layers
            diff_ids = base.diff_ids
            empty = snapshot is None
            if snapshot is not None:
                snap = self._snapshots.active(snapshot)
                tmp_dir = self._snapshots.root
                with tempfile.TemporaryFile(dir=tmp_dir) as tar:
                    try:
                        written = write_diff(Path(snap.upper), tar)
                        tar.seek(0)
                        info = self._blobs.ingest(tar, written.diff_id, written.size, lease=lease)
                        self._snapshots.commit(snapshot, written)
                    except BaseException:
                        self._snapshots.remove(snapshot)
                        raise
                layers = (*layers, Descriptor(MediaType.OCI_LAYER, info.digest, info.size))
                diff_ids = (*diff_ids, written.diff_id)
            history = History(now, created_by, author if author is not None else base.author, "", empty)
            image_config = replace(base, diff_ids=diff_ids, config=config, created=now,
                                   author=author if author is not None else base.author,
                                   history=(*base.history, history),
                                   container_config=container_config or {}, comment="")
            image_id = self._blobs.put_bytes(image_config.to_bytes(), lease=lease)
            manifest = Manifest(MediaType.OCI_MANIFEST,
                                Descriptor(MediaType.OCI_CONFIG, image_id, self._blobs.size(image_id)), layers)
            manifest_digest = self._blobs.put_bytes(manifest.to_bytes(), lease=lease)
            self._records.add(image_id, manifest_digest, [], parent=parent.id)
        return StepImage(image_id, image_config, layers)

    def tag(self, image: StepImage, tags: Sequence[Reference]) -> None:
        assert image.id is not None
        rec = self._records.get(image.id)
        if rec is None:
            raise NotFound(f"No such image: {image.id}")
        if all(str(t) in rec.tags for t in tags):
            return    # a rebuild that changed nothing: the tags are there already, nothing to write
        self._records.add(image.id, rec.manifest, list(tags))

    def prepare(self, key: str, parent: StepImage) -> Path:
        """A writable snapshot above parent; returns its upper directory."""
        return Path(self._snapshots.prepare(key, parent.top_layer).upper)

    def mounted(self, key: str, target: Path) -> None:
        os.makedirs(target, exist_ok=True)
        self._snapshots.mount(key, target)

    def unmount(self, target: Path) -> None:
        self._snapshots.unmount(target)

    def discard(self, key: str) -> None:
        try:
            self._snapshots.remove(key)
        except NotFound:
            pass

    def upper(self, key: str) -> Path:
        return Path(self._snapshots.active(key).upper)

    def lowerdirs(self, image: StepImage) -> list[Path]:
        top = image.top_layer
        return self._snapshots.lowerdirs(top) if top is not None else []
