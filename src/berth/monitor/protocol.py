"""The monitor's socket protocol: one JSON request line per connection, parsed here into typed requests; replies
are one JSON line; an attach connection then carries Docker's stream framing (or raw bytes with a tty).

Docker's framing: an 8-byte header [stream (1 stdout, 2 stderr), 0, 0, 0, payload length as uint32 big-endian]
then the payload. May import: berth.oci.record, berth.runtime.jsonio, berth.errors.
"""

from __future__ import annotations

from berth.errors import InvalidArgument
from berth.oci.record import record
from berth.runtime import jsonio

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing costs milliseconds on the container start path
if TYPE_CHECKING:
    from typing import Any

MAX_REQUEST = 64 * 1024
STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


@record
class Attach:
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True


@record
class Start:
    pass


@record
class Resize:
    height: int
    width: int


@record
class Wait:
    pass


@record
class Status:
    pass


Request = Attach | Start | Resize | Wait | Status


def _flag(raw: dict[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise InvalidArgument(f"attach: {name} must be true or false, not {value!r}")
    return value


def _dimension(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 0xFFFF:
        raise InvalidArgument(f"resize: {name} must be an integer from 1 to 65535, not {value!r}")
    return value


def parse_request(line: bytes) -> Request:
    try:
        raw = jsonio.loads(line.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"request is not a JSON line: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidArgument("request must be a JSON object")
    op = raw.get("op")
    if op == "attach":
        return Attach(_flag(raw, "stdin", False), _flag(raw, "stdout", True), _flag(raw, "stderr", True))
    if op == "start":
        return Start()
    if op == "resize":
        return Resize(_dimension(raw, "height"), _dimension(raw, "width"))
    if op == "wait":
        return Wait()
    if op == "status":
        return Status()
    raise InvalidArgument(f"unknown op {op!r}: use attach, start, resize, wait or status")


def reply(value: dict[str, Any]) -> bytes:
    return (jsonio.dumps(value) + "\n").encode()


def frame(stream: int, payload: bytes) -> bytes:
    """One Docker stream frame (stream 1 stdout, 2 stderr)."""
    n = len(payload)
    return bytes((stream, 0, 0, 0, (n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)) + payload


def read_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split framed bytes into (stream, payload) pairs; the incomplete tail is returned for the next read."""
    out = []
    pos = 0
    while len(data) - pos >= 8:
        n = int.from_bytes(data[pos + 4:pos + 8], "big")
        if len(data) - pos - 8 < n:
            break
        out.append((data[pos], data[pos + 8:pos + 8 + n]))
        pos += 8 + n
    return out, data[pos:]
