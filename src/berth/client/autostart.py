"""Start berthd when nobody answers on a socket berth owns, and say so.

Which sockets are berth's is decided by hosts.berth_owns (default socket, $BERTH_HOST, `-H .../berth*.sock`;
never $DOCKER_HOST or TCP). The daemon is the `berthd` console script beside sys.executable (override: $BERTHD),
started detached in its own session with `--host unix://<socket>`, its output in `<socket dir>/berthd.log`.
Two CLIs racing to start it serialise on a lock file next to the socket; the loser finds the winner's daemon.

May import: the standard library, berth.errors, berth.util.locks, berth.client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from berth.client.hosts import DaemonHost, berth_owns
from berth.client.transport import EngineClient
from berth.errors import Unavailable
from berth.util.locks import file_lock

START_TIMEOUT = 20.0


def daemon_command(environ: Mapping[str, str]) -> str:
    if environ.get("BERTHD"):
        return environ["BERTHD"]
    beside = Path(sys.executable).parent / "berthd"
    if beside.exists():
        return str(beside)
    found = shutil.which("berthd")
    if found:
        return found
    raise Unavailable("berthd is not installed beside this berth (looked in "
                      f"{beside.parent} and $PATH); install berth or set $BERTHD")


def _answers(host: DaemonHost) -> bool:
    with EngineClient(host, timeout=2.0) as probe:
        try:
            probe.ping()
            return True
        except Unavailable:
            return False


def ensure_daemon(client: EngineClient, stderr: TextIO, environ: Mapping[str, str] | None = None,
                  timeout: float = START_TIMEOUT) -> int | None:
    """Ping the daemon; if none answers and the socket is berth's, start berthd. Returns the started pid."""
    env = os.environ if environ is None else environ
    try:
        client.ping()
        return None
    except Unavailable:
        if not berth_owns(client.host) or env.get("BERTH_NO_AUTOSTART"):
            raise
    client.close()
    sock = Path(client.host.socket_path)
    try:
        sock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Unavailable(f"no daemon answered on {client.host}, and berth cannot create {sock.parent} to start "
                          f"one: {exc.strerror}") from exc
    with file_lock(sock.parent / f".{sock.name}.start.lock"):
        if _answers(client.host):  # somebody else started it while we waited for the lock
            return None
        return _start(client.host, sock, env, stderr, timeout)


def _start(host: DaemonHost, sock: Path, env: Mapping[str, str], stderr: TextIO, timeout: float) -> int:
    command = [daemon_command(env), "--host", str(host)]
    log_path = sock.parent / "berthd.log"
    if sock.exists() and sock.is_socket():
        sock.unlink()  # stale: nobody answers on it (checked under the lock)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True, env=dict(env))
        except OSError as exc:
            raise Unavailable(f"no daemon answered on {host}, and starting {command[0]} failed: "
                              f"{exc.strerror}") from exc
    stderr.write(f"berth: no daemon answered on {host}; started berthd (pid {proc.pid}), log at {log_path}\n")
    stderr.flush()
    deadline = time.monotonic() + timeout
    while not _answers(host):
        code = proc.poll()
        if code is not None:
            raise Unavailable(f"berthd (pid {proc.pid}) exited with status {code} before answering on {host}; "
                              f"see {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise Unavailable(f"berthd (pid {proc.pid}) did not answer on {host} within {timeout:.0f}s; "
                              f"see {log_path}")
        time.sleep(0.05)
    return proc.pid


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
