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


def encode_entry(data: bytes, stream: str, when: str) -> bytes:
    text = encode_basestring(data.decode("utf-8", "replace"))
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return f'{{"log":{text},"stream":"{stream}","time":"{when}"}}\n'.encode()


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
        when = timestamp()
        start = 0
        entries = []
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            while end + 1 - start > LINE_LIMIT:
                entries.append(encode_entry(bytes(buf[start:start + LINE_LIMIT]), stream, when))
                start += LINE_LIMIT
            entries.append(encode_entry(bytes(buf[start:end + 1]), stream, when))
            start = end + 1
        while len(buf) - start >= LINE_LIMIT:
            entries.append(encode_entry(bytes(buf[start:start + LINE_LIMIT]), stream, when))
            start += LINE_LIMIT
        del buf[:start]
        for entry in entries:
            self._append(entry)

    def flush(self) -> None:
        """Write what is left of unfinished lines (the streams ended)."""
        when = timestamp()
        for stream, buf in self._pending.items():
            if buf:
                self._append(encode_entry(bytes(buf), stream, when))
                buf.clear()

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, entry: bytes) -> None:
        if self.max_size > 0 and self._size >= self.max_size:
            self._rotate()
        view = memoryview(entry)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(entry)

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
