"""The local terminal for `run -it`, `attach` and `exec -it`: raw mode, its size, and detach keys.

Raw mode is moby/term's MakeRaw (no echo, no canonical lines, no signals from keys, no output processing, 8-bit),
applied to stdin only, and undone by `RawTerminal.restore()` on every way out (the caller's `with`, and a
SIGTERM/SIGHUP turned into an exception so the `with` runs). Detach keys are docker's: a comma-separated list of
single characters or `ctrl-<x>`; the default is ctrl-p,ctrl-q.

May import: the standard library, berth.errors.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios

from berth.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import Any

DEFAULT_DETACH_KEYS = b"\x10\x11"   # ctrl-p ctrl-q


def parse_detach_keys(text: str) -> bytes:
    """docker's term.ToBytes: "ctrl-p,ctrl-q" -> b"\\x10\\x11"; "a,ctrl-@" -> b"a\\x00"."""
    out = bytearray()
    for key in text.split(","):
        key = key.strip() if len(key.strip()) > 0 else key
        if len(key) == 1:
            out.append(ord(key))
            continue
        low = key.lower()
        if not low.startswith("ctrl-") or len(low) != 6:
            raise InvalidArgument(f"Unknown character: '{key}'")
        ch = low[5]
        if "a" <= ch <= "z":
            out.append(ord(ch) - ord("a") + 1)
        elif ch == "@":
            out.append(0)
        elif ch in "[\\]^_":
            out.append(ord(ch) - ord("[") + 27)
        else:
            raise InvalidArgument(f"Unknown character: '{key}'")
    if not out:
        raise InvalidArgument("no detach keys given")
    return bytes(out)


class EscapeProxy:
    """Watches stdin bytes for the detach sequence. feed() returns what to forward now and whether the whole
    sequence was typed; a partial match is held back and sent on as soon as the next byte breaks it (docker's
    escapeProxy)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for b in data:
            if b == self.keys[self._held]:
                self._held += 1
                if self._held == len(self.keys):
                    return bytes(out), True
                continue
            if self._held:
                out += self.keys[:self._held]
                self._held = 0
                if b == self.keys[0]:
                    self._held = 1
                    continue
            out.append(b)
        return bytes(out), False


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on fd, or None if it is not one (or reports 0x0)."""
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols = struct.unpack("HHHH", packed)[:2]
    if rows == 0 and cols == 0:
        return None
    return rows, cols


class Hangup(Exception):
    """SIGTERM or SIGHUP arrived while the terminal was raw: unwinds through the restore."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class RawTerminal:
    """`with RawTerminal(fd):` puts the terminal in raw mode and restores it however the block ends."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> RawTerminal:
        self._saved = termios.tcgetattr(self.fd)
        raw = termios.tcgetattr(self.fd)
        raw[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR |
                    termios.IGNCR | termios.ICRNL | termios.IXON)
        raw[1] &= ~termios.OPOST
        raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        raw[2] &= ~(termios.CSIZE | termios.PARENB)
        raw[2] |= termios.CS8
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, _raise_hangup)
        termios.tcsetattr(self.fd, termios.TCSADRAIN, raw)
        return self

    def restore(self) -> None:
        if self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass  # the terminal went away (hangup): nothing left to restore
            self._saved = None
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _raise_hangup(signum: int, frame: FrameType | None) -> None:
    raise Hangup(signum)


def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def on_resize(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on every SIGWINCH; returns the function that stops it."""
    def handler(signum: int, frame: FrameType | None) -> None:
        callback()

    old = signal.signal(signal.SIGWINCH, handler)

    def stop() -> None:
        signal.signal(signal.SIGWINCH, old)

    return stop
