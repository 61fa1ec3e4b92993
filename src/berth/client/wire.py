"""A minimal HTTP/1.1 client connection: just what the Engine API needs, without http.client.

http.client pulls in the email package and ssl (about 40 ms of imports on this machine), which a CLI pays on
every call. This speaks HTTP/1.1 on one socket: requests with a bytes body (Content-Length) or an iterable body
(chunked), responses framed by Content-Length, chunked encoding or connection close, and keep-alive reuse.

May import: the standard library (socket, io). Raises OSError subclasses and WireError; transport wraps them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping

_MAX_LINE = 65536
_MAX_HEADERS = 200


class WireError(OSError):
    """The peer sent something that is not HTTP/1.x, or closed the connection mid-message."""


class ClosedBeforeResponse(WireError):
    """The peer closed a (kept-alive) connection before sending a status line: safe to retry."""


class RawResponse:
    """Status, headers (lower-cased names) and a body reader bounded by the response's framing."""

    def __init__(self, conn: Connection, method: str) -> None:
        self._conn = conn
        line = conn.readline()
        if not line:
            raise ClosedBeforeResponse("the daemon closed the connection without answering")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise WireError(f"not an HTTP response: {line[:80]!r}")
        self.version = parts[0]
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            raw = conn.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise WireError(f"malformed header line: {raw[:80]!r}")
            self.headers[name.strip().lower()] = value.strip()
        else:
            raise WireError("too many header lines")
        no_body = method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200
        self._chunked = not no_body and "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._remaining: int | None  # bytes left in the body (or in the current chunk); None: until close
        if no_body:
            self._remaining = 0
        elif self._chunked:
            self._remaining = -1  # before the first chunk-size line
        elif length is not None:
            try:
                self._remaining = int(length)
            except ValueError as exc:
                raise WireError(f"bad Content-Length {length!r}") from exc
        else:
            self._remaining = None
        conn_header = self.headers.get("connection", "").lower()
        self.will_close = (self._remaining is None or conn_header == "close" or
                           (self.version == "HTTP/1.0" and conn_header != "keep-alive"))
        self._done = self._remaining == 0
        if self._done:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        self._conn.response_done(self.will_close)

    def read1(self, size: int) -> bytes:
        """Up to `size` body bytes as soon as some are available; b"" at the end of the body."""
        if self._done:
            return b""
        if self._chunked:
            if self._remaining in (-1, 0):
                if self._remaining == 0:
                    self._conn.readline()  # the CRLF after a chunk's data
                size_line = self._conn.readline()
                if not size_line:
                    raise WireError("the daemon closed the connection inside a chunked body")
                try:
                    self._remaining = int(size_line.split(b";")[0].strip(), 16)
                except ValueError as exc:
                    raise WireError(f"bad chunk size line {size_line[:40]!r}") from exc
                if self._remaining == 0:
                    while self._conn.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._finish()
                    return b""
            assert self._remaining is not None
            data = self._conn.read1(min(size, self._remaining))
            if not data:
                raise WireError("the daemon closed the connection inside a chunk")
            self._remaining -= len(data)
            return data
        if self._remaining is None:
            data = self._conn.read1(size)
            if not data:
                self._finish()
            return data
        data = self._conn.read1(min(size, self._remaining))
        if not data:
            raise WireError(f"the daemon closed the connection with {self._remaining} body bytes unsent")
        self._remaining -= len(data)
        if self._remaining == 0:
            self._finish()
        return data

    def read(self) -> bytes:
        parts = []
        while chunk := self.read1(65536):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        """Abandon the rest of the body: the connection cannot be reused for another request."""
        if not self._done:
            self._done = True
            self._conn.close()


class Connection:
    """One socket to the daemon; sequential request/response pairs with keep-alive."""

    def __init__(self, family: int, address: str | tuple[str, int], timeout: float | None) -> None:
        self._family, self._address, self._timeout = family, address, timeout
        self._sock: socket.socket | None = None
        self._file: object = None
        self._reader: _Reader | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _connect(self) -> None:
        if self._family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._timeout)
                sock.connect(self._address)
            except BaseException:
                sock.close()
                raise
        else:
            assert isinstance(self._address, tuple)
            sock = socket.create_connection(self._address, timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._reader = _Reader(sock)

    def request(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes | Iterable[bytes] | None) -> RawResponse:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        head = [f"{method} {target} HTTP/1.1"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if isinstance(body, bytes):
            head.append(f"Content-Length: {len(body)}")
        elif body is not None:
            head.append("Transfer-Encoding: chunked")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if isinstance(body, bytes):
            self._sock.sendall(data + body)
        elif body is None:
            self._sock.sendall(data)
        else:
            self._sock.sendall(data)
            for chunk in body:
                if chunk:
                    self._sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self._sock.sendall(b"0\r\n\r\n")
        return RawResponse(self, method)

    def readline(self) -> bytes:
        assert self._reader is not None
        return self._reader.readline()

    def read1(self, size: int) -> bytes:
        assert self._reader is not None
        return self._reader.read1(size)

    def response_done(self, will_close: bool) -> None:
        if will_close:
            self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._reader = None


class _Reader:
    """Buffered reads from a socket: lines for the head, and whatever is available for bodies."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if not data:
            return False
        self._buf += data
        return True

    def readline(self) -> bytes:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[:i + 1], self._buf[i + 1:]
                return line
            if len(self._buf) > _MAX_LINE:
                raise WireError("a header or chunk-size line is too long")
            if not self._fill():
                line, self._buf = self._buf, b""
                return line

    def read1(self, size: int) -> bytes:
        if not self._buf and not self._fill():
            return b""
        data, self._buf = self._buf[:size], self._buf[size:]
        return data


def iter_body(resp: RawResponse, size: int = 65536) -> Iterator[bytes]:
    while chunk := resp.read1(size):
        yield chunk
