"""What a RUN step's container leaves in its snapshot's upper directory besides its own changes.

The engine bind-mounts /etc/hosts, /etc/hostname and /etc/resolv.conf over a container's rootfs, and the
runtime mounts /dev, /proc and /sys; overlayfs creates their mount points in the upper directory (and copies
up their parents). Docker keeps these in a separate init layer, so a RUN step's layer never holds them; berth
removes them before the diff is taken.

May import: the standard library only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

_MOUNT_POINTS = ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv")
_MOUNT_DIRS = ("etc", "dev", "proc", "sys")


def drop_mount_points(upper: Path, lowers: Sequence[Path]) -> None:
    """Remove what only the engine's mounts put into a RUN container's upper directory (Docker keeps them in an
    init layer): the /etc files it bind-mounts, and directories that exist only as their mount points or were
    copied up for them without any change of their own."""
    for rel in _MOUNT_POINTS:
        path = upper / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_size == 0 or not any(os.path.lexists(low / rel) for low in lowers)):
            path.unlink()
    for rel in _MOUNT_DIRS:
        path = upper / rel
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or any(os.scandir(path)) or _opaque(path):
                continue
        except OSError:
            continue
        below = next((low / rel for low in lowers if os.path.lexists(low / rel)), None)
        if below is None:
            if rel in ("dev", "proc", "sys"):
                os.rmdir(path)
            continue
        lst = os.lstat(below)
        if stat.S_ISDIR(lst.st_mode) and (lst.st_mode, lst.st_uid, lst.st_gid) == (st.st_mode, st.st_uid, st.st_gid):
            os.rmdir(path)


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False
