"""What a crash of berthd can leave half done among the container records, swept at its next start.

A record becomes visible when its config.json is written (ContainerStore.create) and is complete once its
bundle/rootfs directory exists, the last step of a create; it goes away with one rename to '.removing-<id>', the
last step of a removal, before that is deleted. A directory under containers/ without config.json, state.json or
bundle/rootfs is therefore a create that a kill cut short (its client never had an answer), a '.removing-' one a
removal, and a container snapshot (its key is the 64-hex container id) without any directory a
create killed between preparing the snapshot and writing the record. At startup nothing else uses them: their
rootfs mount, network namespace, runtime state (and cgroup), monitor socket, snapshot and directory go.

A record still `created` whose monitor answers, or that holds a rootfs mount or a network namespace, is a start
that the kill cut short (the client never heard it succeed): the start is rolled back, so that the container's
status says what runs and a created container holds nothing. An exited one still holding them is an exit whose
recording was cut short between saving the state and releasing them: they are released.

May import: berth.engine's lower modules (containers, monitors, netns), berth.runtime, berth.snapshots, berth.util,
berth.errors. Not lifecycle: it calls this.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from berth.engine import monitors
from berth.engine import netns as netns_mod
from berth.engine.containers import ContainerStore, Status
from berth.errors import BerthError
from berth.runtime import api as runtime
from berth.snapshots.store import Snapshotter
from berth.util import linux

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def sweep_incomplete(store: ContainerStore, snapshots: Snapshotter, state_root: Path,
                     netns_of: Callable[[str], Path], socket_of: Callable[[str], Path]) -> list[str]:
    """Remove what interrupted creates and removals left, roll back interrupted starts; returns one note per
    container."""
    notes: list[str] = []
    present = set(os.listdir(store.root))
    for entry in sorted(present):
        d = store.dir_of(entry)
        removing = entry.startswith(".removing-")
        if not d.is_dir() or (not removing and (d / "config.json").exists() and (d / "state.json").exists()
                                  and (d / "bundle" / "rootfs").is_dir()):
            continue
        _unmount_rootfs(d)
        if removing:
            entry = entry.removeprefix(".removing-")
            notes.append(f"finished removing container {entry[:12]}, whose removal a crash interrupted")
        else:
            notes.append(f"removed container {entry[:12]}, whose create a crash interrupted")
        if _CONTAINER_ID.fullmatch(entry):
            _forget(entry, snapshots, state_root, netns_of, socket_of)
        shutil.rmtree(d, ignore_errors=True)
    quarantine = store.root.parent / "quarantine"    # kept whole there, snapshot included, for a person to look at
    kept = set(os.listdir(quarantine)) if quarantine.is_dir() else set()
    for key in snapshots.snapshot_keys():
        if _CONTAINER_ID.fullmatch(key) and key not in present and key not in kept:
            _forget(key, snapshots, state_root, netns_of, socket_of)
            notes.append(f"removed the snapshot of container {key[:12]}, whose create a crash interrupted")
    for c in list(store.all()):
        if c.state.status not in (Status.CREATED, Status.EXITED, Status.DEAD):
            continue
        live = c.state.status is Status.CREATED and monitors.alive(socket_of(c.id))
        if live:
            with contextlib.suppress(BerthError, OSError):
                runtime.delete(c.id, str(state_root), force=True)
            deadline = time.monotonic() + 5
            while monitors.alive(socket_of(c.id)) and time.monotonic() < deadline:
                time.sleep(0.05)     # the monitor reaps, writes exit.json and leaves
            for name in ("exit.json", "started.json"):
                (c.dir / name).unlink(missing_ok=True)
        pinned = netns_of(c.id).exists()
        netns_mod.remove(netns_of(c.id))
        released = _unmount_rootfs(c.dir) or pinned     # a container that does not run holds no mount or netns
        if c.state.status is Status.CREATED and (live or released):
            notes.append(f"rolled back the start of container {c.short_id}, which a crash interrupted")
        elif released:
            notes.append(f"released the rootfs and network namespace of stopped container {c.short_id}")
    return notes


def _unmount_rootfs(record_dir: Path) -> bool:
    rootfs = record_dir / "bundle" / "rootfs"
    if not os.path.ismount(rootfs):
        return False
    with contextlib.suppress(OSError):
        linux.umount(str(rootfs), linux.MNT_DETACH)
    return True


def _forget(container_id: str, snapshots: Snapshotter, state_root: Path, netns_of: Callable[[str], Path],
            socket_of: Callable[[str], Path]) -> None:
    netns_mod.remove(netns_of(container_id))
    with contextlib.suppress(BerthError, OSError):
        runtime.delete(container_id, str(state_root), force=True)
    with contextlib.suppress(BerthError, OSError):
        snapshots.remove(container_id)
    socket_of(container_id).unlink(missing_ok=True)
