"""`docker exec`: processes started in a running container through `berth-runtime exec` (a child process, so
berthd itself never becomes a child subreaper), with pipes, or a pty received on a console socket.

Exec records live in memory, as in Docker: they do not survive a daemon restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.engine.containers import Container, Status
from berth.engine.specgen import capabilities, merged_env, rlimits_json
from berth.errors import Conflict, InvalidArgument, NotFound

RUNTIME = str(Path(sys.executable).with_name("berth-runtime"))


@dataclass(slots=True)
class ExecConfig:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    privileged: bool = False
    console_size: tuple[int, int] = (0, 0)


@dataclass(slots=True)
class ExecRecord:
    id: str
    config: ExecConfig
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    proc: subprocess.Popen[bytes] | None = None
    master: int = -1
    done: threading.Event = field(default_factory=threading.Event)
    on_exit: Callable[[int], object] | None = None     # told the exit code (berthd's exec_die event)


@dataclass(slots=True)
class ExecSession:
    """What the API relays: the process's stdin, and its output (one pty master, or stdout and stderr)."""
    record: ExecRecord
    stdin: int
    outputs: list[tuple[str, int]]


class ExecService:
    def __init__(self, exec_root: Path, state_root: Path) -> None:
        self._dir = exec_root / "e"
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._state_root = state_root
        self._execs: dict[str, ExecRecord] = {}
        self._lock = threading.Lock()

    def create(self, container: Container, config: ExecConfig) -> ExecRecord:
        if container.state.status is not Status.RUNNING:
            raise Conflict(f"Container {container.id} is not running" if container.state.status is not Status.PAUSED
                           else f"Container {container.id} is paused, unpause the container before exec")
        if not config.cmd:
            raise InvalidArgument("No exec command specified")
        record = ExecRecord(secrets.token_hex(32), config)
        with self._lock:
            self._execs[record.id] = record
        return record

    def get(self, exec_id: str) -> ExecRecord:
        with self._lock:
            record = self._execs.get(exec_id)
        if record is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return record

    def forget(self, exec_id: str) -> None:
        """Drop a finished exec's record (a healthcheck's probe: Docker does not keep those either)."""
        with self._lock:
            self._execs.pop(exec_id, None)

    def ids_for(self, container_id: str) -> list[str]:
        with self._lock:
            return [e.id for e in self._execs.values() if e.config.container_id == container_id]

    def start(self, record: ExecRecord, container: Container) -> ExecSession:
        if record.running or record.exit_code is not None:
            raise Conflict(f"Error: Exec command {record.id} has already run")
        cfg = record.config
        process = self._process(container, cfg)
        spec_path = self._dir / f"{record.id[:16]}.json"
        spec_path.write_text(json.dumps(process))
        pid_path = self._dir / f"{record.id[:16]}.pid"
        argv = [RUNTIME, "--root", str(self._state_root), "exec", "--process", str(spec_path),
                "--pid-file", str(pid_path)]
        console: socket.socket | None = None
        if cfg.tty:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            console_path = str(self._dir / f"{record.id[:16]}.sock")
            console.bind(console_path)
            console.listen(1)
            argv += ["--console-socket", console_path]
        argv.append(container.id)
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            record.proc = subprocess.Popen(argv, stdin=stdin_r, stdout=out_w, stderr=err_w, close_fds=True)
        finally:
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
        record.running = True
        outputs = [("stdout", out_r), ("stderr", err_r)]
        if console is not None:
            try:
                console.settimeout(10)
                conn, _ = console.accept()
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
                record.master = fds[0]
            except OSError as exc:
                record.proc.kill()
                raise Conflict(f"exec {record.id}: the runtime sent no terminal: {exc}") from exc
            finally:
                console.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._dir / f"{record.id[:16]}.sock")
            os.close(stdin_w)
            stdin_w = os.dup(record.master)
            outputs = [("tty", os.dup(record.master)), ("stderr", err_r), ("stdout", out_r)]
        threading.Thread(target=self._reap, args=(record, spec_path, pid_path), daemon=True).start()
        return ExecSession(record, stdin_w, outputs)

    def _reap(self, record: ExecRecord, spec_path: Path, pid_path: Path) -> None:
        assert record.proc is not None
        code = record.proc.wait()
        # No pid file: the process never started (e.g. an unknown command). Docker reports 126 then.
        record.exit_code = (code if code >= 0 else 128 - code) if pid_path.exists() else 126
        pid_path.unlink(missing_ok=True)
        record.running = False
        spec_path.unlink(missing_ok=True)
        if record.master >= 0:
            os.close(record.master)
            record.master = -1
        if record.on_exit is not None:
            record.on_exit(record.exit_code)
        record.done.set()

    def kill(self, record: ExecRecord) -> None:
        """SIGKILL the exec'd process inside the container (by the pid the runtime wrote), then its runtime."""
        pid_path = self._dir / f"{record.id[:16]}.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_path.read_text().strip()), signal.SIGKILL)
        if record.proc is not None:
            try:
                record.proc.wait(2)      # the runtime reports the process's death (137) itself
            except subprocess.TimeoutExpired:
                record.proc.kill()

    def resize(self, exec_id: str, height: int, width: int) -> None:
        record = self.get(exec_id)
        if record.master < 0:
            raise Conflict(f"exec {exec_id} has no terminal to resize")
        fcntl.ioctl(record.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def _process(self, container: Container, cfg: ExecConfig) -> dict[str, Any]:
        user: dict[str, Any] = {"uid": 0, "gid": 0}
        who = cfg.user or container.config.user
        if who:
            from berth.runtime.users import resolve_user
            u = resolve_user(str(container.dir / "bundle" / "rootfs"), who)
            user = {"uid": u.uid, "gid": u.gid, **({"additionalGids": list(u.groups)} if u.groups else {})}
        caps = capabilities(container.config)
        if cfg.privileged:
            from berth.engine.specgen import all_capabilities
            caps = list(all_capabilities())
        env = merged_env(container.config)
        for item in cfg.env:
            key = item.partition("=")[0]
            env = [e for e in env if e.partition("=")[0] != key] + [item]
        size = {"consoleSize": {"height": cfg.console_size[0], "width": cfg.console_size[1]}} \
            if cfg.tty and cfg.console_size != (0, 0) else {}
        limits = rlimits_json(container.config)
        return {**size, **({"rlimits": limits} if limits else {}), "terminal": cfg.tty, "user": user,
                "args": list(cfg.cmd), "env": env,
                "cwd": cfg.working_dir or container.config.working_dir or "/",
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                "noNewPrivileges": any(o.startswith("no-new-privileges") for o in container.config.security_opt)}
