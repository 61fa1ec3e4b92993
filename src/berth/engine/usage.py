"""Disk usage as `docker ps -s` and `docker system df` count it.

Sizes are moby's directory.Size: st_size of every non-directory entry, a hard-linked inode once. A container's
SizeRw is its upper directory's; its SizeRootFs adds its image's. An image's SharedSize is the part of it in
layers other images use too. May import: berth.engine, berth.images, berth.snapshots, berth.oci, berth.errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from berth.engine.containers import Container
from berth.errors import NotFound
from berth.images.service import ImageService, ImageView, docker_size
from berth.oci.digest import Digest
from berth.snapshots.store import Snapshotter


@dataclass(frozen=True, slots=True)
class ContainerSize:
    rw: int          # the container's own changes
    root_fs: int     # its image plus its changes


@dataclass(frozen=True, slots=True)
class ImageUsage:
    view: ImageView
    containers: int       # how many containers (running or not) use it
    shared_size: int      # bytes in layers another image uses too


@dataclass(frozen=True, slots=True)
class DiskUsage:
    layers_size: int                 # every unpacked layer, each once
    images: tuple[ImageUsage, ...]


def rw_size(snapshots: Snapshotter, c: Container) -> int:
    try:
        return docker_size(Path(snapshots.active(c.id).upper))
    except (NotFound, FileNotFoundError):
        return 0        # removed meanwhile


def container_size(snapshots: Snapshotter, images: ImageService, c: Container,
                   image_sizes: dict[Digest, int] | None = None) -> ContainerSize:
    cache = image_sizes if image_sizes is not None else {}
    if c.config.image_id not in cache:
        try:
            cache[c.config.image_id] = images.view(images.resolve(str(c.config.image_id))).size
        except NotFound:
            cache[c.config.image_id] = 0
    rw = rw_size(snapshots, c)
    return ContainerSize(rw, rw + cache[c.config.image_id])


def image_usage(images: ImageService, containers: Iterable[Container]) -> DiskUsage:
    views = images.list_images()
    using = Counter(c.config.image_id for c in containers)
    layer_users: Counter[Digest] = Counter()
    layer_size: dict[Digest, int] = {}
    for v in views:
        for chain, size in zip(v.chain_ids, v.layer_sizes, strict=False):
            layer_users[chain] += 1
            layer_size[chain] = size
    out = []
    for v in views:
        shared = sum(size for chain, size in zip(v.chain_ids, v.layer_sizes, strict=False)
                     if layer_users[chain] > 1)
        out.append(ImageUsage(v, using[v.record.id], shared))
    return DiskUsage(sum(layer_size.values()), tuple(out))
