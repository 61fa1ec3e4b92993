"""A little disk space held back in a state directory (a container's, the networks'), so state can still be
written when the disk is full (moby#12195: a daemon that cannot record an exit on a full disk shows the container running forever).

`<dir>/.reserve` is a preallocated file of RESERVE_BYTES. A state write that fails with ENOSPC or EDQUOT gives
the reserve back and is tried once more; the reserve is made again, best effort, once space allows.
May import: the standard library only.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

RESERVE_NAME = ".reserve"
RESERVE_BYTES = 64 * 1024           # a few state.json rewrites, each a new temp file before the rename
_FULL = (errno.ENOSPC, errno.EDQUOT)
T = TypeVar("T")


def ensure_reserve(directory: Path) -> None:
    """Make the reserve if it is missing; a full disk only means there is none yet."""
    path = directory / RESERVE_NAME
    if path.exists():
        return
    tmp = directory / f"{RESERVE_NAME}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def release_reserve(directory: Path) -> bool:
    """Give the reserve's space back; False when there was none."""
    try:
        (directory / RESERVE_NAME).unlink()
    except FileNotFoundError:
        return False
    return True


def with_reserve(directory: Path, write: Callable[[], T]) -> T:
    """write(), and if the disk is full, once more after giving the reserve back."""
    try:
        result = write()
    except OSError as exc:
        if exc.errno not in _FULL or not release_reserve(directory):
            raise
        result = write()
    ensure_reserve(directory)
    return result
