"""An append-only journal of lines, bounded in size by rotation: `<path>` is written, `<path>.1` is the previous
generation. The history a reader sees is `<path>.1` then `<path>`; at most about 2 x max_bytes stay on disk.

Each append is one write(2) on an O_APPEND descriptor, so appenders in several threads or processes never
interleave inside a line. A line torn by a crash is ended with a newline when the journal is opened, so it spoils
only itself; readers skip what does not parse. Rotation happens under an flock, by rename, so an appender that
opened the file just before a rotation still lands in the history (in `<path>.1`).

Appends are not fsync'ed: the journal is history for humans and `since` queries, not a source of truth.
May import: berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class Mark(NamedTuple):
    ino: int        # the inode of the file being appended to when the mark was taken (0: none yet)
    offset: int     # the end of its last complete line then


def _complete(data: bytes) -> tuple[list[bytes], int]:
    """The complete non-empty lines of data and the length they span."""
    end = data.rfind(b"\n") + 1
    return [line for line in data[:end].split(b"\n") if line], end


class Journal:
    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"journal {path}: max_bytes must be positive, not {max_bytes}")
        self.path = path
        self.max_bytes = max_bytes
        self._rotated = path.with_name(path.name + ".1")
        self._lock = path.with_name(path.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return
                f.seek(-1, os.SEEK_END)
                last = f.read(1)
        except FileNotFoundError:
            return
        if last != b"\n":
            self.append(b"")

    def append(self, line: bytes) -> None:
        """Add one line (without its newline; it must not contain one)."""
        if b"\n" in line:
            raise ValueError("a journal line must not contain a newline")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            data = line + b"\n"
            written = os.write(fd, data)
            if written != len(data):      # a full disk: end the torn line so the next one stays whole
                with contextlib.suppress(OSError):
                    os.write(fd, b"\n")
                raise OSError(f"journal {self.path}: short write ({written} of {len(data)} bytes)")
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_size <= self.max_bytes:
                    return        # another appender rotated it while we waited for the lock
            except FileNotFoundError:
                return
            os.replace(self.path, self._rotated)
        finally:
            os.close(fd)

    def lines(self) -> Iterator[bytes]:
        """Every complete line, oldest first (a line still being written at the very end is left out)."""
        yield from self.read()[0]

    def read(self) -> tuple[list[bytes], Mark]:
        """Every complete line, oldest first, and a mark of where they end, for read_after."""
        out: list[bytes] = []
        with contextlib.suppress(FileNotFoundError), open(self._rotated, "rb") as f:
            out += _complete(f.read())[0]
        try:
            with open(self.path, "rb") as f:
                ino = os.fstat(f.fileno()).st_ino
                lines, used = _complete(f.read())
        except FileNotFoundError:
            return out, Mark(0, 0)
        return out + lines, Mark(ino, used)

    def read_after(self, mark: Mark) -> list[bytes]:
        """The complete lines appended since read() returned mark: for a reader that takes the bulk of the history
        without a lock and only this tail under the appenders' lock. The file the mark points into may have
        been rotated meanwhile; lines lost by two rotations in that window are lost."""
        out: list[bytes] = []
        for p in (self._rotated, self.path):
            try:
                with open(p, "rb") as f:
                    ino = os.fstat(f.fileno()).st_ino
                    if ino == mark.ino:
                        f.seek(mark.offset)
                        out += _complete(f.read())[0]
                    elif p == self.path:
                        out += _complete(f.read())[0]
            except FileNotFoundError:
                continue
        return out

    def size(self) -> int:
        total = 0
        for p in (self._rotated, self.path):
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        return total
