"""A listening unix socket, born mode 0600, replacing a stale socket file but never a live server's.

May import: berth.errors.
"""

from __future__ import annotations

import os
import socket

from berth.errors import Conflict, InvalidArgument

MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


def listen_unix(path: str, who: str) -> socket.socket:
    """Listen on path; who ("a monitor") names the server in the Conflict raised when one already answers there."""
    if len(path.encode()) > MAX_PATH:
        raise InvalidArgument(f"socket path {path} is longer than the {MAX_PATH} bytes a unix socket allows")
    if os.path.lexists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: its server is gone
        else:
            raise Conflict(f"{who} already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600: no window in which others could connect
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    try:
        sock.listen(64)
    except OSError:
        sock.close()
        os.unlink(path)
        raise
    return sock
