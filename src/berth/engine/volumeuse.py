"""Containers' use of volumes and host paths: what `create`, `start`, a stop and `rm -v` do about mounts.

- create: --volumes-from copied, binds checked (`--mount type=bind` needs its source), named volumes made on
  demand, an anonymous volume for every `-v /path` and image VOLUME; each made volume is undone if the create fails.
  Then copy-up: the image's content at each volume's target goes into the volume if it is empty (at create, as
  dockerd does: the volume has it before the container ever starts).
- start: Binds' missing host directories made (as Docker does), volumes with options mounted, shared/slave
  propagation checked against the source's mount.
- stop: volumes with options unmounted once no running container uses them.
- rm -v: the container's anonymous volumes removed (named ones never; one still used elsewhere stays, and goes
  with the last of its users removed with -v, --volumes-from ones included).

May import: berth.engine.containers, berth.engine.mounts, berth.volumes, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from berth.engine.containers import Container, ContainerConfig, ContainerStore, Status
from berth.engine.events import EventService
from berth.engine.mounts import (
    MountPoint,
    MountType,
    from_other,
    merge,
    mount_config_error,
    ordered,
    parse_volumes_from,
)
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, RuntimeFailure
from berth.snapshots.store import Snapshotter
from berth.volumes.copyup import copy_up
from berth.volumes.store import ANONYMOUS_LABEL, VolumeStore

_LIVE = (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
log = logging.getLogger("berthd")


class VolumeUsers:
    """Which containers mount which volumes, from the container records. A record's config never changes, so the
    volumes a container mounts are read once per container (200 containers: a few ms instead of 100)."""

    def __init__(self, store: ContainerStore) -> None:
        self._store = store
        self._mounts: dict[str, tuple[str, ...]] = {}   # container id -> the volumes it mounts
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for cid, names in sorted(self._current().items()):
            for name in names:
                out.setdefault(name, []).append(cid)
        return out

    def running(self, container_id: str) -> bool:
        try:
            return self._store.load(container_id).state.status in _LIVE
        except (NotFound, ValueError, KeyError, TypeError):
            return False

    def _current(self) -> dict[str, tuple[str, ...]]:
        ids = set(os.listdir(self._store.root))
        with self._lock:
            for gone in self._mounts.keys() - ids:
                del self._mounts[gone]
            known = dict(self._mounts)
        for cid in ids - known.keys():
            try:
                c = self._store.load(cid)
            except (NotFound, ValueError, KeyError, TypeError):
                continue   # being created (no config yet: not cached, read again next time) or removed
            known[cid] = tuple(dict.fromkeys(m.source for m in c.config.mounts
                                             if m.type is MountType.VOLUME and m.source))
            with self._lock:
                self._mounts[cid] = known[cid]
        return known


def resolve(config: ContainerConfig, volumes: VolumeStore, lookup: Callable[[str], Container],
            undo: contextlib.ExitStack) -> ContainerConfig:
    """The create-time half: every mount of the container decided and every volume it needs made. The caller holds
    `volumes.lock()` until the container's record is written, and unwinds `undo` if anything after fails."""
    inherited: list[MountPoint] = []
    for spec in config.volumes_from:
        ref, mode = parse_volumes_from(spec)
        try:
            other = lookup(ref)
        except NotFound as exc:   # dockerd answers 400: a 404 would make the CLI try to pull the image
            raise InvalidArgument(str(exc)) from None
        inherited += [from_other(m, mode) for m in other.config.mounts]
    for m in config.mounts:
        if m.type is MountType.BIND and not m.create_source and not os.path.lexists(m.source):
            raise mount_config_error("bind", f"bind source path does not exist: {m.source}")
    resolved = []
    for m in merge(inherited, config.mounts, config.volumes):
        if m.type is MountType.VOLUME:
            m = _volume(m, volumes, undo)
        resolved.append(m)
    return replace(config, mounts=tuple(resolved))


def _volume(m: MountPoint, volumes: VolumeStore, undo: contextlib.ExitStack) -> MountPoint:
    if m.host_path:      # inherited through --volumes-from: the volume exists and stays the other's
        return m
    labels = dict(m.labels)
    if not m.source:
        labels[ANONYMOUS_LABEL] = ""
    try:
        volume, created = volumes.create(m.source, m.driver or "local", labels, m.driver_opts)
    except NotFound as exc:   # an unknown driver: a 404 here would make the CLI pull the image (as dockerd's does)
        raise InvalidArgument(str(exc)) from None
    if created:
        undo.callback(_forget, volumes, volume.name)
    return replace(m, source=volume.name, driver=volume.driver, host_path=str(volume.mountpoint),
                   anonymous=not m.source)


def _forget(volumes: VolumeStore, name: str) -> None:
    with contextlib.suppress(BerthError):
        volumes.remove(name)


def populate(c: Container, snapshots: Snapshotter, volumes: VolumeStore) -> None:
    """Copy-up for a container just created: its root filesystem mounted for a moment, each empty volume with
    copy-up filled from the image (a volume with options mounted meanwhile)."""
    wanted = [m for m in ordered(c.config.mounts) if m.type is MountType.VOLUME and m.copy_up]
    if not wanted:
        return
    with tempfile.TemporaryDirectory(prefix=".populate-", dir=c.dir) as tmp:
        rootfs = Path(tmp)
        snapshots.mount(c.id, rootfs)
        try:
            for m in wanted:
                volume = volumes.get(m.source)
                volumes.mount(volume)
                try:
                    with volumes.filling(volume.name):
                        copy_up(rootfs, m.destination, volume.mountpoint)
                finally:
                    volumes.release(volume, c.id)
        finally:
            snapshots.unmount(rootfs)


def prepare(c: Container, volumes: VolumeStore, undo: contextlib.ExitStack,
            events: EventService | None = None) -> None:
    """The start-time half. Each volume mounted is a "mount" event, as dockerd reports it."""
    for m in ordered(c.config.mounts):
        if m.type is MountType.BIND:
            if m.create_source and not os.path.lexists(m.source):
                try:
                    os.makedirs(m.source, 0o755, exist_ok=True)
                except OSError as exc:
                    raise RuntimeFailure(f"error while creating mount source path '{m.source}': {exc}") from exc
            check_source_propagation(m.source, m.propagation)
        elif m.type is MountType.VOLUME:
            try:
                volume = volumes.get(m.source)
            except NotFound as exc:
                raise RuntimeFailure(f"volume {m.source} of container {c.short_id} is gone: {exc}") from exc
            volumes.mount(volume)
            undo.callback(volumes.release, volume, c.id)
            if events is not None:
                events.volume("mount", volume.name, volume.driver, {
                    "container": c.id, "destination": m.destination, "propagation": m.propagation,
                    "read/write": "false" if m.read_only else "true"})


def release(c: Container, volumes: VolumeStore, events: EventService | None = None) -> None:
    """The container stopped: unmount what its volumes mounted, unless another running container uses them;
    an "unmount" event for each of its volumes."""
    for name in dict.fromkeys(m.source for m in c.config.mounts if m.type is MountType.VOLUME):
        with contextlib.suppress(NotFound, BerthError):
            volume = volumes.get(name)
            volumes.release(volume, c.id)
            if events is not None:
                events.volume("unmount", volume.name, volume.driver, {"container": c.id})


def remove_anonymous(c: Container, volumes: VolumeStore) -> None:
    """`rm -v`, after the container's record is gone: a volume still used elsewhere stays (not an error, as for
    dockerd), one that cannot be removed is logged (the container is gone already)."""
    for m in c.config.mounts:
        if m.type is MountType.VOLUME and m.anonymous:
            try:
                volumes.remove(m.source)
            except (NotFound, Conflict):
                continue
            except BerthError as exc:
                log.warning("removing volume %s of container %s: %s", m.source, c.short_id, exc)


def check_source_propagation(source: str, propagation: str) -> None:
    """Docker's rule: a shared bind needs a shared source mount; a slave bind, a shared or slave one."""
    if propagation not in ("shared", "rshared", "slave", "rslave"):
        return
    point, optional = _mount_of(os.path.realpath(source))
    shared = any(f.startswith("shared:") for f in optional)
    slave = any(f.startswith("master:") for f in optional)
    if propagation in ("shared", "rshared") and not shared:
        raise InvalidArgument(f"path {source} is mounted on {point} but it is not a shared mount")
    if not (shared or slave):
        raise InvalidArgument(f"path {source} is mounted on {point} but it is not a shared or slave mount")


def _mount_of(path: str) -> tuple[str, Sequence[str]]:
    """The mount point under which path lies, and its optional fields (shared:N, master:N)."""
    best = "/"
    fields: tuple[str, ...] = ()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f.read().decode().splitlines():
            parts = line.split(" ")
            point = parts[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fields = point, tuple(parts[6:parts.index("-")])
    return best, fields

