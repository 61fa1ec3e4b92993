"""The engine's side of the monitor protocol (berth.monitor's docstring is the contract): one JSON line per
connection, then either one JSON answer (start, resize, wait, status) or a raw attach stream."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from berth.errors import NotFound, RuntimeFailure, Unavailable


def _connect(path: Path, timeout: float | None = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NotFound(f"no monitor answers on {path}") from exc
    except OSError as exc:
        sock.close()
        raise Unavailable(f"monitor socket {path}: {exc}") from exc
    return sock


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def request(path: Path, op: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
    """Send one command and read its one-line JSON answer."""
    sock = _connect(path, timeout)
    try:
        sock.sendall(json.dumps(op).encode() + b"\n")
        line = _read_line(sock)
    except OSError as exc:
        raise Unavailable(f"monitor on {path} did not answer {op.get('op')}: {exc}") from exc
    finally:
        sock.close()
    if not line:
        raise Unavailable(f"monitor on {path} closed the connection during {op.get('op')}")
    answer: dict[str, Any] = json.loads(line)
    if "error" in answer:
        raise RuntimeFailure(str(answer["error"]))
    return answer


def attach(path: Path, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
    """A connection streaming the container's output (framed unless it has a tty) and taking its stdin."""
    sock = _connect(path)
    sock.settimeout(None)
    sock.sendall(json.dumps({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}).encode() + b"\n")
    return sock


def alive(path: Path) -> bool:
    try:
        request(path, {"op": "status"}, timeout=3.0)
    except (NotFound, Unavailable, RuntimeFailure, ValueError):
        return False
    return True
