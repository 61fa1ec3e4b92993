"""Relay a hijacked attach/exec connection to the local terminal or pipes, as docker's hijackedIOStreamer does.

stdin is copied on a thread (through the detach-key watcher when there is a tty) and half-closed at EOF; the
container's output is copied on the calling thread, raw with a tty and split from its 8-byte frame headers
without. With a tty on both ends the local terminal is raw for the duration and restored on every way out, and
its size is sent to the daemon now and on every SIGWINCH. Without a tty, `--sig-proxy` forwards the signals the
CLI receives to the container.

May import: the standard library, berth.cli.tty, berth.client, berth.errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from berth.cli.tty import EscapeProxy, RawTerminal, is_terminal, on_resize, window_size
from berth.client.hijack import STDERR, FrameDecoder, Hijacked
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType
    from typing import BinaryIO

    from berth.client.transport import EngineClient

DETACHED = "detached"
ENDED = "ended"

# The signals docker's ForwardAllSignals would pass on that a user can send on purpose (not SIGCHLD, SIGPIPE,
# SIGURG, SIGWINCH).
PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCONT", "SIGTSTP")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Streams:
    """The local ends: raw fds for stdin (or None when not attached), stdout and stderr."""

    def __init__(self, stdin: int | None, stdout: int, stderr: int) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr

    @classmethod
    def of(cls, stdin: BinaryIO | None, stdout: BinaryIO, stderr: BinaryIO) -> Streams:
        stdout.flush()
        stderr.flush()
        return cls(stdin.fileno() if stdin is not None else None, stdout.fileno(), stderr.fileno())


def relay(conn: Hijacked, streams: Streams, tty: bool, detach_keys: bytes | None) -> str:
    """Copy both ways until the daemon ends the stream (ENDED) or the user types the detach keys (DETACHED)."""
    raw_mode = tty and streams.stdin is not None and is_terminal(streams.stdin)
    with RawTerminal(streams.stdin) if raw_mode else contextlib.nullcontext():  # type: ignore[arg-type]
        return _copy(conn, streams, tty, detach_keys if raw_mode else None)


def _copy(conn: Hijacked, streams: Streams, tty: bool, detach_keys: bytes | None) -> str:
    detached = threading.Event()
    if streams.stdin is not None:
        stdin_fd = streams.stdin

        def pump_stdin() -> None:
            proxy = EscapeProxy(detach_keys) if detach_keys else None
            try:
                while True:
                    data = os.read(stdin_fd, 32768)
                    if not data:
                        conn.close_write()
                        return
                    if proxy is not None:
                        data, hit = proxy.feed(data)
                        if data:
                            conn.send(data)
                        if hit:
                            detached.set()
                            with contextlib.suppress(OSError):
                                conn.sock.shutdown(2)  # ends the output loop below
                            return
                    else:
                        conn.send(data)
            except OSError:
                return   # the daemon closed the connection: the output side sees it too

        threading.Thread(target=pump_stdin, name="stdin", daemon=True).start()
    decoder = None if tty else FrameDecoder()
    while True:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            break
        if decoder is None:
            _write_all(streams.stdout, data)
            continue
        for stream, payload in decoder.feed(data):
            _write_all(streams.stderr if stream == STDERR else streams.stdout, payload)
    return DETACHED if detached.is_set() else ENDED


# ---- terminal size and signals -----------------------------------------------------------------------------------

@contextlib.contextmanager
def tty_size_sync(resize: Callable[[int, int], None], out_fd: int) -> Iterator[None]:
    """Send the terminal's size now (retrying briefly, as docker does, while the process comes up) and on every
    SIGWINCH until the block ends."""
    def send() -> bool:
        size = window_size(out_fd)
        if size is None:
            return True
        try:
            resize(*size)
            return True
        except BerthError:
            return False

    import time

    for attempt in range(10):
        if send():
            break
        time.sleep(0.01 * (attempt + 1))
    stop = on_resize(lambda: threading.Thread(target=send, daemon=True).start())
    try:
        yield
    finally:
        stop()


@contextlib.contextmanager
def signal_proxy(client: EngineClient, kill_path: str) -> Iterator[None]:
    """Forward the signals this process receives to the container (`POST <kill_path>?signal=NAME`)."""
    def forward(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")

        def send() -> None:
            with client.sibling() as c, contextlib.suppress(BerthError, OSError):
                c.call("POST", kill_path, {"signal": name})

        threading.Thread(target=send, daemon=True).start()

    old: dict[int, object] = {}
    for name in PROXIED_SIGNALS:
        sig = getattr(signal, name)
        old[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
