"""Network namespaces kept as bind mounts (`<exec_root>/netns/<id>`), so a container's network outlives its
processes' setup and is torn down with its exit. Until berth has bridge networks, every container that is not
`--network host` gets one of these with only loopback, up (Docker's `--network none`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from pathlib import Path

from berth.errors import RuntimeFailure
from berth.util import linux

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def create(path: Path) -> None:
    """A new network namespace with loopback up, pinned by a bind mount at path."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child only makes syscalls: safe after a fork of a threaded daemon
        try:
            os.close(r)
            linux.unshare(linux.CLONE_NEWNET)
            linux.mount("/proc/self/ns/net", str(path), None, linux.MS_BIND)
            _loopback_up()
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - report, never return into the daemon's code
            with contextlib.suppress(OSError):
                os.write(w, str(exc).encode()[:1000])
            os._exit(1)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        remove(path)
        raise RuntimeFailure(f"cannot create a network namespace at {path}: {message or status}")


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        linux.umount(str(path), linux.MNT_DETACH)
    path.unlink(missing_ok=True)
