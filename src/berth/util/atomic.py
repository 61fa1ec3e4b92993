"""Atomic, durable file writes: a crash leaves the old content or the new, never half of each.

May import: berth.errors.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing (or pathlib) costs milliseconds per container start
if TYPE_CHECKING:
    from typing import Any

    StrPath = str | os.PathLike[str]


def fsync_dir(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: StrPath, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write data to a temp file beside path, fsync it, then rename it over path."""
    directory, name = os.path.split(os.fspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{id(data):x}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(directory or ".")


def write_json_atomic(path: StrPath, value: Any, mode: int = 0o644, durable: bool = True) -> None:
    import json  # here, not at the top: `json` imports `re`, and berth-runtime's start path avoids both

    write_atomic(path, json.dumps(value, indent=1, sort_keys=True).encode() + b"\n", mode, durable)


def read_json(path: StrPath) -> Any:
    import json

    with open(path, "rb") as f:
        return json.load(f)
