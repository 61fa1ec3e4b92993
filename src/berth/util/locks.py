"""Advisory file locks (flock): held by an open fd, released by the kernel when the holder dies.

May import: berth.errors.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold an flock on path (created if missing) for the duration of the block.

    flock, not fcntl record locks: a crashed holder never leaves a stuck lock, and the
    lock is per open file, so two threads of one process exclude each other too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """Take an exclusive flock without waiting; return the fd holding it, or None if busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
