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


def lock_path(path: Path, *, wait: bool = True, mode: int = 0o600) -> int | None:
    """Open path read-write (created if missing) and flock it; return the fd, or None if busy and not wait.

    For files that a lock holder may unlink or replace (ingest partials, lease files): after the
    lock is granted, the fd must still be the inode at path, else a waiter would hold a lock on a
    deleted file while a newcomer locks the new one. On such a race this opens path again.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        except FileNotFoundError:
            if not path.parent.is_dir():
                raise
            continue  # the directory entry vanished between lookup and create: retry
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
