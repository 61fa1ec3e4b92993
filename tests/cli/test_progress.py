"""Progress streams on a terminal: bars per layer, updated in place (rich), as docker shows them; plain lines when
the output is not a terminal (tested with the registry commands)."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from berth.cli.formatter import StreamError, display_stream
from tests.berthd import BERTH, PrivateBerthd


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


PULL = [
    {"status": "Pulling from team/bb", "id": "1"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "4d2c0f5b1a3e"},
    {"status": "Downloading", "progressDetail": {"current": 1000, "total": 4000}, "id": "4d2c0f5b1a3e"},
    {"status": "Downloading", "progressDetail": {"current": 4000, "total": 4000}, "id": "4d2c0f5b1a3e"},
    {"status": "Download complete", "progressDetail": {}, "id": "4d2c0f5b1a3e"},
    {"status": "Pull complete", "progressDetail": {}, "id": "4d2c0f5b1a3e"},
    {"status": "Digest: sha256:" + "a" * 64},
    {"status": "Status: Downloaded newer image for 127.0.0.1:5000/team/bb:1"},
]


def test_a_terminal_gets_a_line_per_layer_with_a_bar_and_byte_counts() -> None:
    out = _Tty()
    display_stream(iter(PULL), out)
    text = out.getvalue()
    assert "4d2c0f5b1a3e: Pull complete" in text
    assert "4.0/4.0 kB" in text                     # the counters of the finished download
    assert "━" in text                              # a bar was drawn
    assert "Status: Downloaded newer image for 127.0.0.1:5000/team/bb:1" in text
    assert "{" not in text                           # nothing of the JSON leaks


def test_an_error_in_the_stream_is_raised_on_a_terminal_too() -> None:
    with pytest.raises(StreamError, match="manifest unknown"):
        display_stream(iter([*PULL[:3], {"errorDetail": {"message": "manifest unknown"}, "error": "x"}]), _Tty())


def _in_pty(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as its stdout and stderr; returns (exit status, everything it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:   # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.root
def test_berth_push_and_pull_on_a_terminal_show_bars(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    registry = subprocess.Popen([BERTH, "registry", "serve", "--listen", f"127.0.0.1:{port}", "--root",
                                 str(tmp_path / "registry")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with PrivateBerthd() as b:
            b.berth("image", "bootstrap", "busybox")
            ref = f"127.0.0.1:{port}/team/bb:1"
            b.berth("tag", "busybox", ref)
            code, pushed = _in_pty([BERTH, "-H", b.host, "push", ref])
            assert code == 0, pushed
            assert "Pushed" in pushed and "digest: sha256:" in pushed
            b.berth("rmi", ref, "busybox")
            code, pulled = _in_pty([BERTH, "-H", b.host, "pull", ref])
            assert code == 0, pulled
            # drawn with terminal control codes; the layers stay in the content store after rmi: "Already exists"
            assert ("Pull complete" in pulled or "Already exists" in pulled) and "\x1b[" in pulled, pulled
            assert "0/? bytes" not in pulled                           # no empty bar for a layer without counters
            assert re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", pulled).rstrip().splitlines()[-1].strip() == ref
    finally:
        registry.terminate()
        registry.wait(timeout=10)
