"""What `docker commit`, `export`, `diff` and `top` read of a container: its upper directory, its merged root
filesystem, its processes."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from berth.engine.containers import Container, Status
from berth.engine.lifecycle import ContainerService
from berth.errors import BerthError, InvalidArgument, RuntimeFailure
from berth.images.changes import apply_change
from berth.images.service import ImageService
from berth.oci.config import ContainerConfig, Healthcheck
from berth.oci.digest import Digest
from berth.oci.reference import Reference
from berth.runtime import api as runtime
from berth.snapshots.diff import write_diff, write_tree
from berth.snapshots.store import Snapshotter

CHANGE_MODIFIED, CHANGE_ADDED, CHANGE_DELETED = 0, 1, 2


@contextlib.contextmanager
def merged_rootfs(containers: ContainerService, snapshots: Snapshotter, c: Container) -> Iterator[Path]:
    """The container's root filesystem, mounted for as long as the caller needs it."""
    rootfs = containers.bundle_of(c) / "rootfs"
    if os.path.ismount(rootfs):
        yield rootfs
        return
    with tempfile.TemporaryDirectory(prefix=".view-", dir=c.dir) as tmp:
        snapshots.mount(c.id, Path(tmp))
        try:
            yield Path(tmp)
        finally:
            snapshots.unmount(Path(tmp))


def export(containers: ContainerService, snapshots: Snapshotter, c: Container, out: BinaryIO) -> None:
    with merged_rootfs(containers, snapshots, c) as root:
        write_tree(root, out)


def changes(snapshots: Snapshotter, c: Container) -> list[tuple[str, int]]:
    """Docker's `diff`: paths added, changed or deleted in the container, from its upper directory."""
    snap = snapshots.active(c.id)
    upper = Path(snap.upper)
    lowers = snapshots.lowerdirs(snap.parent) if snap.parent is not None else []
    out: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in sorted([*dirnames, *filenames]):
            full = Path(dirpath) / name
            rel = "/" + str(full.relative_to(upper))
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append((rel, CHANGE_DELETED))
            elif any(os.path.lexists(str(low) + rel) for low in lowers):
                out.append((rel, CHANGE_MODIFIED))
            else:
                out.append((rel, CHANGE_ADDED))
    return sorted(out)


def top(containers: ContainerService, c: Container, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
    """Docker's `top`: the host's `ps` output, rows limited to the container's processes."""
    if c.state.status not in (Status.RUNNING, Status.PAUSED):
        raise InvalidArgument(f"Container {c.id} is not running")
    pids = set(runtime.processes(c.id, str(containers.state_root)))
    args = ps_args.split() or ["-ef"]
    proc = subprocess.run(["ps", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InvalidArgument(f"ps {ps_args}: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument(f"Couldn't find PID field in ps output for {ps_args!r}")
    at = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > at and fields[at].isdigit() and int(fields[at]) in pids:
            rows.append(fields)
    return titles, rows


def commit(containers: ContainerService, snapshots: Snapshotter, images: ImageService, c: Container,
           tag: Reference | None, comment: str, author: str, change_lines: Sequence[str], pause: bool) -> Digest:
    """`docker commit`: the container's changes as a new layer on its image, its config as the image's."""
    cfg = c.config
    config = ContainerConfig(user=cfg.user, exposed_ports=cfg.exposed_ports, env=cfg.env, entrypoint=cfg.entrypoint,
                             cmd=cfg.cmd, volumes=cfg.volumes, working_dir=cfg.working_dir, labels=cfg.labels,
                             stop_signal=cfg.stop_signal,
                             healthcheck=Healthcheck.from_json(cfg.healthcheck) if cfg.healthcheck else None)
    for line in change_lines:
        config = apply_change(config, line)
    config = replace(config)
    paused_here = False
    if pause and c.state.status is Status.RUNNING:
        containers.pause(c.id)
        paused_here = True
    try:
        snap = snapshots.active(c.id)
        with tempfile.TemporaryFile(dir=c.dir) as layer:
            write_diff(Path(snap.upper), layer)
            layer.seek(0)
            parent = images.resolve(str(cfg.image_id))
            return images.commit(parent, layer, config, " ".join(cfg.args), comment, author, tag)
    except OSError as exc:
        raise RuntimeFailure(f"committing container {c.short_id}: {exc}") from exc
    finally:
        if paused_here:
            with contextlib.suppress(BerthError):
                containers.unpause(c.id)
