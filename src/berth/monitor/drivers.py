"""How the monitor drives an OCI runtime: the built-in one in-process, or runc/crun (or any runc-compatible binary)
as a command. Each driver creates the container with the monitor's stdio (pipes, or a pty whose master comes back
over a console socket), starts it, reads whether the kernel OOM-killed it, and deletes it.

The monitor is a child subreaper before any of this, so the container's init becomes its child either way.
May import: berth.runtime, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import socket

from berth.errors import InvalidArgument, NotFound, RuntimeFailure
from berth.runtime import api, jsonio

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing costs milliseconds on the container start path
if TYPE_CHECKING:
    from typing import Protocol

    class Driver(Protocol):
        def create(self, stdio: tuple[int, int, int] | None, tty: bool) -> tuple[int, int | None]:
            """Create the container; (init pid, pty master fd or None)."""
        def start(self) -> None: ...
        def oom_killed(self) -> bool: ...
        def delete(self) -> None: ...


def _receive_master(sock: socket.socket) -> int:
    sock.settimeout(10)
    try:
        _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    except OSError as exc:
        raise RuntimeFailure(f"receiving the container's pty: {exc}") from exc
    if not fds:
        raise InvalidArgument("the container has no terminal to send: with a tty, config.json needs "
                              "process.terminal true")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


class BuiltinDriver:
    """berth's own runtime, called in-process (no second interpreter on the start path)."""

    def __init__(self, container_id: str, bundle: str, state_root: str) -> None:
        self.container_id, self.bundle, self.state_root = container_id, bundle, state_root

    def create(self, stdio: tuple[int, int, int] | None, tty: bool) -> tuple[int, int | None]:
        if not tty:
            return api.create(self.container_id, self.bundle, self.state_root, stdio=stdio), None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = api.create(self.container_id, self.bundle, self.state_root, console_socket=theirs)
            theirs.close()  # now the pty arrives, or EOF if the init had none to send
            try:
                return pid, _receive_master(ours)
            except BaseException:
                api.delete(self.container_id, self.state_root, force=True)
                raise
        finally:
            theirs.close()
            ours.close()

    def start(self) -> None:
        api.start(self.container_id, self.state_root)

    def oom_killed(self) -> bool:
        return api.oom_killed(self.container_id, self.state_root)

    def delete(self) -> None:
        try:
            api.delete(self.container_id, self.state_root, force=True)
        except NotFound:
            pass


class CommandDriver:
    """runc, crun or another binary with runc's command line (`create --bundle --pid-file --console-socket`)."""

    def __init__(self, binary: str, container_id: str, bundle: str, state_root: str, work_dir: str) -> None:
        self.binary, self.container_id, self.bundle, self.state_root = binary, container_id, bundle, state_root
        self.work_dir = work_dir  # short-lived files of create: pid file, runtime log, console socket
        self.memory_cgroup = ""   # where the runtime put the init (runc and crun place a default one differently)

    def _run(self, args: list[str], stdio: tuple[int, int, int] | None = None) -> None:
        import subprocess  # only containers on an external runtime pay for it

        log = os.path.join(self.work_dir, "runtime.log")
        argv = [self.binary, "--root", self.state_root, "--log", log, "--log-format", "json", *args]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            ins = stdio or (null, null, null)
            proc = subprocess.run(argv, stdin=ins[0], stdout=ins[1], stderr=ins[2], timeout=120)
        except FileNotFoundError as exc:
            raise NotFound(f"runtime {self.binary} not found: install it or give its path to --runtime") from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"runtime {self.binary} {args[0]} failed: {exc}") from exc
        finally:
            os.close(null)
        message = _last_error(log)
        try:
            os.unlink(log)
        except FileNotFoundError:
            pass
        if proc.returncode != 0:
            raise RuntimeFailure(message or f"runtime {self.binary} {args[0]} exited with {proc.returncode}")

    def create(self, stdio: tuple[int, int, int] | None, tty: bool) -> tuple[int, int | None]:
        pid_file = os.path.join(self.work_dir, "runtime.pid")
        args = ["create", "--bundle", self.bundle, "--pid-file", pid_file]
        listener = None
        console_path = os.path.join(self.work_dir, "console.sock")
        try:
            if tty:
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(console_path)
                listener.listen(1)
                args += ["--console-socket", console_path]
            self._run([*args, self.container_id], None if tty else stdio)
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                self.memory_cgroup = _memory_cgroup_of(pid)
                master = None
                if listener is not None:
                    listener.settimeout(10)
                    conn, _ = listener.accept()
                    try:
                        master = _receive_master(conn)
                    finally:
                        conn.close()
                return pid, master
            except BaseException:
                self.delete()
                raise
        except (OSError, ValueError) as exc:
            raise RuntimeFailure(f"runtime {self.binary}: create did not report the container: {exc}") from exc
        finally:
            if listener is not None:
                listener.close()
            for path in (pid_file, console_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def start(self) -> None:
        self._run(["start", self.container_id])

    def oom_killed(self) -> bool:
        from berth.runtime.cgroups import open_cgroup

        if not self.memory_cgroup.strip("/"):
            return False  # in the root cgroup: no limit, and no count of its own
        return open_cgroup(self.memory_cgroup, self.container_id).oom_kills() > 0

    def delete(self) -> None:
        self._run(["delete", "--force", self.container_id])


def _memory_cgroup_of(pid: int) -> str:
    """The absolute path of pid's memory cgroup (v1), or of its cgroup (v2): "" if unknown."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    unified = ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
        if controllers == "":
            unified = path
    return unified


def _last_error(log: str) -> str:
    """The last error message in a runc/crun JSON log (`{"level":"error","msg":...}` lines)."""
    try:
        with open(log, "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return ""
    for line in reversed(lines):
        try:
            entry = jsonio.loads(line.decode(errors="replace"))
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            return str(entry["msg"])
    return ""


def make_driver(runtime: str, container_id: str, bundle: str, state_root: str, work_dir: str) -> Driver:
    if runtime == "berth":
        return BuiltinDriver(container_id, bundle, state_root)
    if runtime in ("runc", "crun") or runtime.startswith("/"):
        return CommandDriver(runtime, container_id, bundle, state_root, work_dir)
    raise InvalidArgument(f"unknown runtime {runtime!r}")


__all__ = ["BuiltinDriver", "CommandDriver", "make_driver"]
