"""What a crash of berthd can leave half done among the container records, swept at its next start.

A record becomes visible when its config.json is written, the last step of a create (ContainerStore.create), and
stays visible until its directory is removed, the last step of a removal. A directory under containers/ without
both config.json and state.json is therefore a create or a removal that a kill cut short, and a container snapshot
(its key is the 64-hex container id) without any directory is a create killed between preparing the snapshot and
writing the record. At startup nothing else uses them: their rootfs mount, network namespace, runtime state (and
cgroup), monitor socket, snapshot and directory go.

May import: berth.engine's lower modules (containers, netns), berth.runtime, berth.snapshots, berth.util,
berth.errors. Not lifecycle: it calls this.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from berth.engine import netns as netns_mod
from berth.engine.containers import ContainerStore
from berth.errors import BerthError
from berth.runtime import api as runtime
from berth.snapshots.store import Snapshotter
from berth.util import linux

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def sweep_incomplete(store: ContainerStore, snapshots: Snapshotter, state_root: Path,
                     netns_of: Callable[[str], Path], socket_of: Callable[[str], Path]) -> list[str]:
    """Remove what interrupted creates and removals left; returns one note per container swept."""
    notes: list[str] = []
    present = set(os.listdir(store.root))
    for entry in sorted(present):
        d = store.dir_of(entry)
        if not d.is_dir() or ((d / "config.json").exists() and (d / "state.json").exists()):
            continue
        rootfs = d / "bundle" / "rootfs"
        if os.path.ismount(rootfs):
            with contextlib.suppress(OSError):
                linux.umount(str(rootfs), linux.MNT_DETACH)
        _forget(entry, snapshots, state_root, netns_of, socket_of)
        shutil.rmtree(d, ignore_errors=True)
        notes.append(f"removed container {entry[:12]}, whose create or removal a crash interrupted")
    for key in snapshots.snapshot_keys():
        if _CONTAINER_ID.fullmatch(key) and key not in present:
            _forget(key, snapshots, state_root, netns_of, socket_of)
            notes.append(f"removed the snapshot of container {key[:12]}, whose create a crash interrupted")
    return notes


def _forget(container_id: str, snapshots: Snapshotter, state_root: Path, netns_of: Callable[[str], Path],
            socket_of: Callable[[str], Path]) -> None:
    netns_mod.remove(netns_of(container_id))
    with contextlib.suppress(BerthError, OSError):
        runtime.delete(container_id, str(state_root), force=True)
    with contextlib.suppress(BerthError, OSError):
        snapshots.remove(container_id)
    socket_of(container_id).unlink(missing_ok=True)
