"""Reading a container's json-file log for GET /containers/{id}/logs: what is there, then (follow) what comes.

The files are opened before the response's headers go out, and read through those descriptors: a client may remove
the container as soon as it has the headers (docker-py's `containers.run` asks for the logs, waits, then removes),
and an open file outlives its name. A follow that sees the container stopped reads once more before it ends: the
last output may have landed between its previous read and the exit being recorded.
May import: the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

POLL_SECONDS = 0.05


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _rotated(path: Path) -> list[Path]:
    """<log>.N files, oldest (highest N) first."""
    found = [p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()]
    return sorted(found, key=lambda p: -int(p.suffix[1:]))


class LogReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._old = [f for f in (_open(p) for p in _rotated(path)) if f is not None]
        self._live = _open(path)
        self._pending = b""   # a last line still being written

    def close(self) -> None:
        for f in [*self._old, *([self._live] if self._live is not None else [])]:
            f.close()
        self._old, self._live = [], None

    def lines(self) -> list[bytes]:
        """Every complete line so far, rotated files first; what follows comes from follow()."""
        out: list[bytes] = []
        for f in self._old:
            out += f.readlines()
            f.close()
        self._old = []
        if self._live is not None:
            out += self._live.readlines()
        if out and not out[-1].endswith(b"\n"):
            self._pending = out.pop()
        return out

    def _read(self) -> bytes:
        if self._live is None:
            self._live = _open(self.path)      # the container had not written any yet
            if self._live is None:
                return b""
        data = self._live.read()
        if data:
            return data
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino != os.fstat(self._live.fileno()).st_ino:   # rotated: on to the new file
                self._live.close()
                self._live = _open(self.path)
                return self._live.read() if self._live is not None else b""
        return b""

    async def follow(self, stopped: Callable[[], bool], emit: Callable[[bytes], Awaitable[None]]) -> None:
        """Emit each complete line as it is written, until stopped() and nothing more is there."""
        last_look = False
        while True:
            chunk = self._read()
            if chunk:
                self._pending += chunk
                *complete, self._pending = self._pending.split(b"\n")
                for line in complete:
                    await emit(line)
                continue
            if last_look:
                return
            if stopped():
                last_look = True     # one more read: output written just before the exit was recorded
                continue
            await asyncio.sleep(POLL_SECONDS)
