"""Starting a monitor fully detached, and learning whether its container could be created.

spawn() forks twice (the middle process calls setsid and exits at once, so the monitor is in its own session, is
nobody's child but init's — or the nearest subreaper's — and never a zombie of the engine), points the monitor's
stdin/stdout to /dev/null and its stderr to <dir>/monitor.log, passes it only its ready pipe (fd 3), and execs a
fresh interpreter: `python -I -S` (no site: about 10 ms less on the container start path; the monitor needs only
the standard library and berth, whose directory is put on sys.path). It returns once the monitor is ready (socket
listening, container created) with the monitor's pid, or raises the error the runtime raised, with its message.
May import: berth.monitor, berth.runtime.jsonio, berth.errors.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import sys
import time

from berth import errors
from berth.errors import BerthError, NotFound, RuntimeFailure
from berth.monitor.options import MonitorOptions, parse_args
from berth.runtime import jsonio

READY_FD = 3
_BOOT = ("import sys;sys.path.insert(0,sys.argv.pop(1));from berth.monitor.{} import main;"
         "sys.exit(main(sys.argv[1:]))")
_SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MAX_FD = 0x7FFFFFFF


def monitor_argv(options: MonitorOptions, python: str | None = None) -> list[str]:
    """The command line of a monitor for these options, reporting readiness on fd 3."""
    argv = parse_args(options.to_argv()).to_argv()  # round trip: what the monitor will parse is what we checked
    return [*_interpreter(python, "main"), *argv, "--ready-fd", str(READY_FD)]


def _interpreter(python: str | None, module: str) -> list[str]:
    return [python or sys.executable, "-I", "-S", "-c", _BOOT.format(module), _SOURCE_DIR]


def spawn(options: MonitorOptions, *, python: str | None = None, timeout: float = 120.0,
          zygote: str | None = None) -> int:
    """Start a detached monitor for a container whose bundle is ready; its pid once the container is created.

    With zygote (a socket path), the monitor is forked by the fork server there (berth.monitor.zygote), which is
    started first if nothing answers; if it cannot be reached even then, the monitor is exec'd as without it.
    """
    argv = monitor_argv(options, python)
    log_path = os.path.join(options.container_dir, "monitor.log")
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except FileNotFoundError as exc:
        raise NotFound(f"container directory {options.container_dir} does not exist") from exc
    except OSError as exc:
        raise RuntimeFailure(f"cannot open the monitor's log {log_path}: {exc.strerror}") from exc
    ready_r, ready_w = os.pipe()
    try:
        try:
            forked = zygote is not None and _via_zygote(zygote, options.to_argv(), ready_w, log, python)
            if not forked:
                _fork_exec(argv, log, ready_w)
        finally:
            os.close(ready_w)
            os.close(log)
        line = _read_line(ready_r, timeout)
    finally:
        os.close(ready_r)
    return _parse_ready(line, log_path)


def _fork_exec(argv: list[str], log: int, ready_w: int) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        middle = os.fork()
        if middle == 0:
            _detach_and_exec(argv, null, log, ready_w)
    finally:
        os.close(null)
    os.waitpid(middle, 0)


def _via_zygote(path: str, argv: list[str], ready_w: int, log: int, python: str | None) -> bool:
    """Hand the monitor's start to the fork server; False if none could be reached (or started)."""
    from berth.monitor import zygote

    request = (jsonio.dumps({"argv": argv, "stamp": zygote.code_stamp()}) + "\n").encode()
    for attempt in range(3):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(30)
        try:
            try:
                sock.connect(path)
            except OSError:
                if attempt == 2:
                    return False
                try:
                    start_zygote(path, python)
                except BerthError:
                    return False  # no fork server here (a bad path, say): exec the monitor instead
                continue
            socket.send_fds(sock, [request], [ready_w, log])
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(256)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            return False  # sent or not, a monitor may exist: the ready pipe tells (EOF if none)
        finally:
            sock.close()
        if answer == b"forked\n":
            return True
        if answer != b"stale\n":
            raise RuntimeFailure(f"monitor zygote on {path}: {answer.decode(errors='replace').strip()!r}")
    return False


def start_zygote(path: str, python: str | None = None, timeout: float = 30.0) -> None:
    """Start a fork server for monitors on path, detached like a monitor; returns once it listens."""
    log = os.open(path + ".log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    ready_r, ready_w = os.pipe()
    try:
        try:
            _fork_exec([*_interpreter(python, "zygote"), path], log, ready_w)
        finally:
            os.close(ready_w)
            os.close(log)
        line = _read_line(ready_r, timeout, ready_only=True)
    finally:
        os.close(ready_r)
    if not line.startswith(b"OK"):
        raise RuntimeFailure(f"the monitor zygote on {path} did not start: {line.decode(errors='replace')[1:]}")


def stop_zygote(path: str) -> bool:
    """Ask the fork server on path to exit; False if none answered."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(10)
    try:
        sock.connect(path)
        socket.send_fds(sock, [b'{"stop": true}\n'], [])
        return sock.recv(64) == b"stopped\n"
    except OSError:
        return False
    finally:
        sock.close()


def _detach_and_exec(argv: list[str], null: int, log: int, ready_w: int) -> None:
    """In the forked child: never returns."""
    try:
        # above 3 first, so that no dup2 below overwrites one of them (the engine's stdio could be closed)
        null, log, ready_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (null, log, ready_w))
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.dup2(ready_w, READY_FD)
        os.closerange(READY_FD + 1, _MAX_FD)
        os.chdir("/")
        os.execv(argv[0], argv)
    except BaseException:  # noqa: BLE001 (a forked child must never return into the engine's code)
        try:
            os.write(ready_w, b"ERuntimeFailure\tcannot start the monitor process\n")
        finally:
            os._exit(127)


def _read_line(fd: int, timeout: float, ready_only: bool = False) -> bytes:
    """The ready line; after an error line, wait for EOF too (the monitor has exited: nothing is left)."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data or not data.startswith(b"OK") and not ready_only:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeFailure(f"the monitor did not become ready within {timeout:.0f} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _parse_ready(line: bytes, log_path: str) -> int:
    text = line.decode(errors="replace").rstrip("\n")
    if text.startswith("OK "):
        return int(text.split()[1])
    if text.startswith("E"):
        kind, _, message = text[1:].partition("\t")
        cls = getattr(errors, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, BerthError)):
            cls = RuntimeFailure
        raise cls(message)
    raise RuntimeFailure(f"the monitor exited before it was ready: {_tail(log_path)}")


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 2000))
            return f.read().decode(errors="replace").strip() or "(no output; see " + path + ")"
    except OSError:
        return f"(see {path})"
