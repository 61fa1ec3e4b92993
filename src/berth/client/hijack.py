"""Hijacked connections (attach, exec start) and Docker's stdout/stderr stream framing, for the CLI.

`hijack()` sends one request with `Connection: Upgrade` / `Upgrade: tcp` on a socket of its own, reads the head
(101 UPGRADED, or the documented 200 fallback), and hands back a `Hijacked` pipe: bytes the container writes come
from recv(), stdin goes through send(), and close_write() is the half-close that ends the container's stdin.
`FrameDecoder` splits the 8-byte-header framing (`[stream, 0, 0, 0, len uint32 BE]`) of non-tty streams.

May import: the standard library, berth.errors, berth.client.hosts, berth.client.transport.
"""

from __future__ import annotations

import json
import socket
import struct

from berth.client.hosts import DaemonHost
from berth.client.transport import USER_AGENT, EngineClient, raise_for_status
from berth.errors import Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

_MAX_HEAD = 64 * 1024
STDIN, STDOUT, STDERR = 0, 1, 2


class Hijacked:
    """The raw pipe left after a hijack: recv() the container's output, send() stdin, close_write() at EOF."""

    def __init__(self, sock: socket.socket, leftover: bytes, content_type: str) -> None:
        self.sock = sock
        self._leftover = leftover
        # only a hint (a 1.41 daemon says raw-stream either way): framing follows the container's or exec's Tty
        self.content_type = content_type

    def recv(self, size: int = 65536) -> bytes:
        if self._leftover:
            data, self._leftover = self._leftover[:size], self._leftover[size:]
            return data
        try:
            return self.sock.recv(size)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the daemon already closed its end: nothing left to tell it

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Hijacked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(host: DaemonHost, timeout: float | None) -> socket.socket:
    try:
        if host.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(host.socket_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((host.tcp_host, host.tcp_port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        raise Unavailable(f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?") from exc
    return sock


def _read_head(sock: socket.socket) -> tuple[int, str, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise Unavailable("the daemon closed the connection without answering the attach request")
        buf += chunk
        if len(buf) > _MAX_HEAD:
            raise Unavailable("the daemon's answer to the attach request has an oversized head")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Unavailable(f"the daemon answered something that is not HTTP: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest


def _read_error_body(sock: socket.socket, headers: Mapping[str, str], rest: bytes) -> bytes:
    """The body of an error answer (Content-Length, chunked, or to close), bounded."""
    data = rest
    sock.settimeout(10)
    try:
        length = int(headers.get("content-length", "-1"))
    except ValueError:
        length = -1
    while len(data) < _MAX_HEAD and (length < 0 or len(data) < length):
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if "chunked" in headers.get("transfer-encoding", "") and data.endswith(b"0\r\n\r\n"):
            break
    if "chunked" in headers.get("transfer-encoding", ""):
        out, pos = b"", 0
        while pos < len(data):
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                break
            try:
                size = int(data[pos:line_end].split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out += data[line_end + 2:line_end + 2 + size]
            pos = line_end + 4 + size
        return out
    return data[:length] if length >= 0 else data


def hijack(client: EngineClient, path: str, query: Mapping[str, Any] | None = None,
           json_body: Any = None) -> Hijacked:
    """POST `path` asking for an upgraded connection; error statuses raise berth errors like any call."""
    target = client.url(path, query)
    body = b"" if json_body is None else json.dumps(json_body).encode()
    head = [f"POST {target} HTTP/1.1", "Host: api.moby.localhost", f"User-Agent: {USER_AGENT}",
            "Connection: Upgrade", "Upgrade: tcp", f"Content-Length: {len(body)}"]
    if json_body is not None:
        head.append("Content-Type: application/json")
    sock = _connect(client.host, None)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status, reason, headers, rest = _read_head(sock)
        if status >= 300 and status != 101:
            raise_for_status(status, _read_error_body(sock, headers, rest), reason)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"the daemon at {client.host} broke off the attach: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return Hijacked(sock, rest, headers.get("content-type", ""))


class FrameDecoder:
    """Incremental splitter of Docker's framed stream: feed bytes, get (stream, payload) pieces."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._buf += data
        while len(self._buf) >= 8:
            stream, size = struct.unpack(">BxxxI", self._buf[:8])
            if len(self._buf) < 8 + size:
                return
            payload, self._buf = self._buf[8:8 + size], self._buf[8 + size:]
            yield stream, payload

    @property
    def pending(self) -> int:
        return len(self._buf)
