"""A fork server for monitors: one long-lived process with the monitor and the runtime already imported, which
forks a monitor per request instead of exec'ing a fresh interpreter (about 35 ms less on every container start).

Protocol on its socket (mode 0600): the spawner sends one JSON line `{"argv": [...], "stamp": "..."}` with two
fds attached (SCM_RIGHTS): the ready pipe's write end and the monitor's stderr (monitor.log). The server forks
twice (the middle child calls setsid and exits, so the monitor belongs to nobody but init) and answers "forked";
the spawner then reads the ready pipe exactly as for an exec'd monitor. `{"stop": true}` ends the server.

The stamp names the berth code the server imported (the newest mtime of berth/monitor and berth/runtime): a
spawner with other code gets "stale", and the server exits, so that an upgrade never runs old monitor code.
The server holds no container state: killing it at any time only costs the next start its fast path.
May import: berth.monitor, berth.runtime, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import fcntl
import gc
import os
import socket
import sys
import traceback

from berth.errors import BerthError, Conflict, InvalidArgument
from berth.monitor.listen import listen_unix
from berth.runtime import jsonio

READY_FD = 3
MAX_REQUEST = 256 * 1024
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_stamp() -> str:
    """The newest modification time among the monitor's and the runtime's modules."""
    newest = 0
    for sub in ("monitor", "runtime", "util", "oci"):
        with os.scandir(os.path.join(_PACKAGE_DIR, sub)) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
    return str(newest)


def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    data = b""
    fds: list[int] = []
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk, more, _, _ = socket.recv_fds(conn, 65536, 4)
        fds += more
        if not chunk:
            break
        data += chunk
    try:
        request = jsonio.loads(data.split(b"\n", 1)[0])
    except ValueError:
        request = None
    if not isinstance(request, dict):
        for fd in fds:
            os.close(fd)
        raise InvalidArgument("zygote request is not a JSON object line")
    return request, fds


def _become_monitor(argv: list[str], ready_w: int, log: int) -> None:
    """In the forked grandchild: the fds of a freshly exec'd monitor, then its main(). Never returns."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDWR)
        # above 3 first, so that no dup2 below overwrites one of them
        ready_w, log, null = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (ready_w, log, null))
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.dup2(ready_w, READY_FD)
        os.closerange(READY_FD + 1, 0x7FFFFFFF)
        os.chdir("/")
        from berth.monitor.main import main

        code = main([*argv, "--ready-fd", str(READY_FD)])
    except BaseException:  # noqa: BLE001 (a forked child must never return into the server's loop)
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001, S110
            pass
    finally:
        os._exit(code)


def _precompile(argv: list[str]) -> None:
    """Compile the container's seccomp profile here, once per profile (berth.runtime.seccomp keeps it): the monitor
    forked next inherits it, and neither it nor the container's init compiles anything. Any error is left for the
    monitor to report."""
    try:
        from berth.oci.spec import Seccomp
        from berth.runtime.seccomp import compile_filter, is_cached

        bundle = argv[argv.index("--bundle") + 1]
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            raw = jsonio.loads(f.read())
        found = raw.get("linux", {}).get("seccomp") if isinstance(raw, dict) else None
        if isinstance(found, dict):
            profile = Seccomp.from_json(found)
            if not is_cached(profile):
                compile_filter(profile)
                gc.freeze()   # the cached profile too: a monitor's collections must not copy its pages
    except (ValueError, OSError, BerthError, AttributeError, TypeError, IndexError):
        pass


def _fork_monitor(argv: list[str], ready_w: int, log: int) -> None:
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                _become_monitor(argv, ready_w, log)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)


def serve(listener: socket.socket, path: str, stamp: str) -> int:
    # what every monitor uses, imported once here; then frozen, so that the collector in a forked monitor does
    # not touch (and copy) the pages these objects live on
    import berth.monitor.main
    import berth.monitor.server  # noqa: F401

    gc.freeze()
    while True:
        conn, _ = listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(10)
            request, fds = _receive(conn)
            if request.get("stop") or request.get("stamp") != stamp:
                os.unlink(path)  # first: whoever reads the answer may start a new server on path at once
                conn.sendall(b"stale\n" if not request.get("stop") else b"stopped\n")
                return 0
            argv = request.get("argv")
            if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and len(fds) == 2):
                conn.sendall(b"error: expected argv and two fds\n")
                continue
            _precompile(argv)
            _fork_monitor(argv, fds[0], fds[1])
            conn.sendall(b"forked\n")
        except (OSError, InvalidArgument) as exc:
            sys.stderr.write(f"berth-monitor-zygote: {exc}\n")
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()


def main(argv: list[str]) -> int:
    """`python -m berth.monitor.zygote PATH` with a ready pipe on fd 3 (started by berth.monitor.spawn)."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m berth.monitor.zygote SOCKET_PATH\n")
        return 2
    path = argv[0]
    stamp = code_stamp()
    try:
        listener = listen_unix(path, "a monitor zygote")
    except Conflict:
        listener = None  # another spawner started one at the same moment: it serves
    except (OSError, InvalidArgument) as exc:
        os.write(READY_FD, f"E{exc}\n".encode())
        return 1
    os.write(READY_FD, b"OK\n")
    os.close(READY_FD)
    if listener is None:
        return 0
    return serve(listener, path, stamp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
