"""Talking to a monitor over its socket: one request and its reply, or an attach stream.

The engine and the tests use these; the wire format is berth.monitor.protocol's. May import: berth.monitor,
berth.errors.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from berth.errors import Conflict, InvalidArgument, Unavailable


def connect(path: str, timeout: float | None = 30.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"no monitor answers on {path}: {exc.strerror}; its container may have exited "
                          "(see its exit.json)") from exc
    return sock


def call(path: str, request: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
    """Send one request line, return the reply (an {"error": ...} reply raises Conflict or InvalidArgument)."""
    with connect(path, timeout) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise Unavailable(f"the monitor on {path} closed the connection without answering "
                          f"{request.get('op')!r}: its container has probably just exited")
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise InvalidArgument(f"monitor on {path} answered {reply!r}")
    if "error" in reply:
        kind = InvalidArgument if "unknown op" in reply["error"] or "must be" in reply["error"] else Conflict
        raise kind(reply["error"])
    return reply


def attach(path: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
           timeout: float | None = 30.0) -> socket.socket:
    """An attach stream: read Docker-framed output (raw with a tty) to EOF; write stdin; shutdown(SHUT_WR) for EOF."""
    sock = connect(path, timeout)
    sock.sendall(json.dumps({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}).encode() + b"\n")
    return sock
