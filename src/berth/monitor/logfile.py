"""The container's log in Docker's json-file format, with Docker's rotation.

One line per message: `{"log":"hi\\n","stream":"stdout","time":"2024-01-01T00:00:00.123456789Z"}`. Output is split
after each newline as Docker's copier does; a line without a newline is written once 16 KiB of it are buffered, or
when the stream ends. The text is escaped as Go's encoding/json does (`<`, `>`, `&`, U+2028/9 as \\u escapes;
invalid UTF-8 as U+FFFD). Rotation as dockerd's: before a write, if the live file has reached max-size, it becomes
`.1` (`.1` becomes `.2` ... up to max-file - 1) and a new file starts; with max-file 1 the file is just emptied.
May import: nothing from berth (stdlib only).
"""

from __future__ import annotations

import os
import time
from _json import encode_basestring

LINE_LIMIT = 16 * 1024  # Docker's copier buffer: a longer line is logged in 16 KiB pieces

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def timestamp(t_ns: int | None = None) -> str:
    """RFC 3339 in UTC with exactly nine fractional digits (Go's RFC3339NanoFixed, what Docker writes)."""
    t = time.time_ns() if t_ns is None else t_ns
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000)) + f".{t % 1_000_000_000:09d}Z"


def _go_escapes(text: str) -> str:
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def encode_entry(data: bytes, stream: str, when: str) -> bytes:
    text = encode_basestring(data.decode("utf-8", "replace"))
    return f'{{"log":{_go_escapes(text)},"stream":"{stream}","time":"{when}"}}\n'.encode()


def _cut(data: bytes) -> list[str]:
    """A long line as Docker's copier logs it: 16 KiB pieces, the last one shorter."""
    return [encode_basestring(data[i:i + LINE_LIMIT].decode("utf-8", "replace"))
            for i in range(0, len(data), LINE_LIMIT)]


class JsonLog:
    """Appends messages to <dir>/<id>-json.log; one instance per container, used by the monitor's loop only."""

    def __init__(self, path: str, max_size: int = -1, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self._pending: dict[str, bytearray] = {}
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: str, data: bytes) -> None:
        """Log a chunk of a stream's output; complete lines now, the rest when it completes or grows too long."""
        buf = self._pending.setdefault(stream, bytearray())
        buf += data
        last = buf.rfind(b"\n")
        pieces: list[str] = []
        if last >= 0:
            lines = bytes(buf[:last + 1]).split(b"\n")
            lines.pop()  # what follows the last newline: nothing
            del buf[:last + 1]
            for line in lines:
                if len(line) < LINE_LIMIT:
                    pieces.append(encode_basestring((line + b"\n").decode("utf-8", "replace")))
                else:
                    pieces += _cut(line + b"\n")
        if len(buf) >= LINE_LIMIT:
            whole = len(buf) - len(buf) % LINE_LIMIT
            pieces += _cut(bytes(buf[:whole]))
            del buf[:whole]
        if pieces:
            self._append_all(pieces, stream, timestamp())

    def flush(self) -> None:
        """Write what is left of unfinished lines (the streams ended)."""
        for stream, buf in self._pending.items():
            if buf:
                self._append_all([encode_basestring(bytes(buf).decode("utf-8", "replace"))], stream, timestamp())
                buf.clear()

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append_all(self, pieces: list[str], stream: str, when: str) -> None:
        """Write one entry per piece (already JSON strings): one write() per batch, rotating between entries."""
        prefix, suffix = '{"log":', f',"stream":"{stream}","time":"{when}"}}\n'
        if self.max_size <= 0:
            self._write(_go_escapes(prefix + (suffix + prefix).join(pieces) + suffix).encode())
            return
        batch = bytearray()
        for piece in pieces:
            entry = (prefix + _go_escapes(piece) + suffix).encode()
            if self._size + len(batch) >= self.max_size:
                self._write(bytes(batch))
                batch.clear()
                self._rotate()
            batch += entry
        self._write(bytes(batch))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.max_file > 1:
            for n in range(self.max_file - 1, 1, -1):
                try:
                    os.replace(f"{self.path}.{n - 1}", f"{self.path}.{n}")
                except FileNotFoundError:
                    pass
            os.replace(self.path, f"{self.path}.1")
            self._fd = self._open()
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC)
        self._size = 0
