"""The commands of `berth-runtime`, each a small function over berth.runtime.api.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import signal
import sys

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.oci.record import replace
from berth.oci.spec import Capabilities, Process, Spec, User
from berth.runtime import api, jsonio
from berth.runtime.state import check_id
from berth.runtime.users import resolve_user

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start


if TYPE_CHECKING:
    import socket
    from typing import Any, Protocol

    class Opts(Protocol):
        args: list[str]

        def get(self, name: str, default: str | None = None) -> str | None: ...
        def all(self, name: str) -> list[str]: ...
        def flag(self, name: str) -> bool: ...


_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
              signal.SIGWINCH)


def parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError as exc:
        raise InvalidArgument(f"unknown signal {text!r}") from exc


def _one_id(opts: Opts, command: str) -> str:
    if len(opts.args) != 1:
        raise InvalidArgument(f'"{command}" requires exactly 1 argument: the container id')
    return check_id(opts.args[0])


def _bundle(opts: Opts) -> str:
    return os.path.abspath(opts.get("bundle") or os.getcwd())


def _pid_file(opts: Opts) -> str | None:
    value = opts.get("pid-file")
    return os.path.abspath(value) if value else None


def _print_json(value: Any) -> None:
    import json  # output of state/list/ps: the json package for its indentation; not on the start path

    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def dispatch(command: str, opts: Opts, root: str) -> int:
    return int(_COMMANDS[command](opts, root))


def _refuse_no_pivot(opts: Opts) -> None:
    if opts.flag("no-pivot"):
        raise InvalidArgument("--no-pivot is not supported: berth-runtime always uses pivot_root")


def cmd_create(opts: Opts, root: str) -> int:
    _refuse_no_pivot(opts)
    api.create(_one_id(opts, "create"), _bundle(opts), root, console_socket=opts.get("console-socket"),
               pid_file=_pid_file(opts), preserve_fds=int(opts.get("preserve-fds") or 0),
               new_keyring=not opts.flag("no-new-keyring"))
    return 0


def _wait_forwarding(pid: int, master: int | None = None) -> int:
    """Wait for pid, forwarding our signals to it; with a pty master, relay it to our stdio meanwhile."""
    for sig in _FORWARDED:
        signal.signal(sig, lambda s, _f: _forward(pid, s))
    if master is None:
        return api.wait(pid)
    return _relay_tty(pid, master)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _relay_tty(pid: int, master: int) -> int:
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    try:
        fds = [master, 0]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            readable, _, _ = select.select(fds, [], [], 0.05)
            for fd in readable:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if fd == master:
                    if data:
                        os.write(1, data)
                elif data:
                    os.write(master, data)
                else:
                    fds.remove(0)
            if done:
                return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _receive_master(sock: socket.socket) -> int:
    import socket

    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    sock.close()
    if not fds:
        raise InvalidArgument("the container did not send its console")
    return fds[0]


def cmd_run(opts: Opts, root: str) -> int:
    _refuse_no_pivot(opts)
    cid = _one_id(opts, "run")
    bundle = _bundle(opts)
    detach = opts.flag("detach")
    console_path = opts.get("console-socket")
    ours: socket.socket | None = None
    console: str | socket.socket | None = console_path
    spec = api.load_spec(bundle)
    if console_path is None and not detach and spec.process is not None and spec.process.terminal:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console = theirs
    pid = api.create(cid, bundle, root, console_socket=console, pid_file=_pid_file(opts),
                     preserve_fds=int(opts.get("preserve-fds") or 0), spec=spec,
                     new_keyring=not opts.flag("no-new-keyring"))
    try:
        master = _receive_master(ours) if ours is not None else None
        api.start(cid, root)
    except BaseException:
        api.delete(cid, root, force=True)
        raise
    if detach:
        return 0
    code = _wait_forwarding(pid, master)
    if not opts.flag("keep"):
        api.delete(cid, root, force=True)
    return code


def cmd_start(opts: Opts, root: str) -> int:
    api.start(_one_id(opts, "start"), root)
    return 0


def cmd_state(opts: Opts, root: str) -> int:
    _print_json(api.state(_one_id(opts, "state"), root).to_json())
    return 0


def cmd_kill(opts: Opts, root: str) -> int:
    if len(opts.args) not in (1, 2):
        raise InvalidArgument('"kill" requires the container id and optionally a signal')
    sig = parse_signal(opts.args[1]) if len(opts.args) == 2 else int(signal.SIGTERM)
    api.kill(check_id(opts.args[0]), root, sig, all_processes=opts.flag("all"))
    return 0


def cmd_delete(opts: Opts, root: str) -> int:
    cid = _one_id(opts, "delete")
    try:
        api.delete(cid, root, force=opts.flag("force"))
    except NotFound:
        if not opts.flag("force"):
            raise
    return 0


def cmd_pause(opts: Opts, root: str) -> int:
    api.pause(_one_id(opts, "pause"), root)
    return 0


def cmd_resume(opts: Opts, root: str) -> int:
    api.resume(_one_id(opts, "resume"), root)
    return 0


def cmd_ps(opts: Opts, root: str) -> int:
    if not opts.args:
        raise InvalidArgument('"ps" requires the container id')
    cid, ps_args = check_id(opts.args[0]), opts.args[1:] or ["-ef"]
    pids = api.processes(cid, root)
    if (opts.get("format") or "table") == "json":
        _print_json(pids)
        return 0
    import subprocess

    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout.splitlines()
    header = out[0] if out else ""
    columns = header.split()
    if "PID" not in columns:
        raise InvalidArgument("ps output has no PID column")
    col = columns.index("PID")
    sys.stdout.write(header + "\n")
    for line in out[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            sys.stdout.write(line + "\n")
    return 0


def cmd_list(opts: Opts, root: str) -> int:
    reports = api.list_containers(root)
    if opts.flag("quiet"):
        for r in reports:
            sys.stdout.write(r.id + "\n")
        return 0
    if (opts.get("format") or "table") == "json":
        _print_json([r.to_json() | {"rootfs": r.rootfs} for r in reports])
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(r.id, str(r.pid), str(r.status), r.bundle, r.created, r.owner or "root") for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    for row in rows:
        sys.stdout.write("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return 0


def cmd_exec(opts: Opts, root: str) -> int:
    if not opts.args:
        raise InvalidArgument('"exec" requires the container id and a command (or --process)')
    cid = check_id(opts.args[0])
    try:
        with open(os.path.join(root, cid, "config.json"), "rb") as f:
            spec = Spec.from_json(jsonio.loads(f.read()))
    except FileNotFoundError as exc:
        raise NotFound(f"container {cid} does not exist") from exc
    process = _exec_process(opts, spec, api.state(cid, root).rootfs)
    detach = opts.flag("detach")
    console: str | socket.socket | None = opts.get("console-socket")
    ours: socket.socket | None = None
    if process.terminal and console is None:
        if detach:
            raise InvalidArgument("cannot allocate a tty for a detached exec without --console-socket")
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console = theirs
    pid = api.exec_process(cid, root, process, console_socket=console, pid_file=_pid_file(opts),
                           preserve_fds=int(opts.get("preserve-fds") or 0))
    if detach:
        return 0
    master = _receive_master(ours) if ours is not None else None
    return _wait_forwarding(pid, master)


def _exec_process(opts: Opts, spec: Spec, rootfs: str) -> Process:
    path = opts.get("process")
    if path:
        try:
            with open(path, "rb") as f:
                return Process.from_json(jsonio.loads(f.read()))
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"--process {path}: {exc}") from exc
    if len(opts.args) < 2:
        raise InvalidArgument('"exec" needs a command to run after the container id')
    base = spec.process or Process(args=("sh",))
    user = base.user
    if opts.get("user"):
        # runc takes uid[:gid]; names are accepted too, looked up in the rootfs' own /etc/passwd and /etc/group
        who = resolve_user(rootfs, opts.get("user") or "")
        user = User(who.uid, who.gid, user.umask, user.additional_gids)
    if opts.all("additional-gids"):
        user = replace(user, additional_gids=tuple(int(g) for g in opts.all("additional-gids")))
    caps = base.capabilities or Capabilities()
    extra = tuple(c if c.startswith("CAP_") else "CAP_" + c.upper() for c in opts.all("cap"))
    if extra:
        caps = replace(caps, bounding=caps.bounding + extra, effective=caps.effective + extra,
                       permitted=caps.permitted + extra)
    return replace(base, args=tuple(opts.args[1:]), env=base.env + tuple(opts.all("env")),
                   cwd=opts.get("cwd") or base.cwd, terminal=opts.flag("tty"), user=user, capabilities=caps,
                   no_new_privileges=base.no_new_privileges or opts.flag("no-new-privs"))


def default_spec() -> dict[str, Any]:
    """What `spec` writes: runc's example, so bundles made by either runtime match."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {"terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
                    "cwd": "/", "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted",
                                                                          "ambient")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec",
                                                                                              "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev",
                                                                                    "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def cmd_spec(opts: Opts, root: str) -> int:
    target = os.path.join(_bundle(opts), "config.json")
    if os.path.exists(target):
        raise Conflict(f"File {target} exists. Remove it first")
    with open(target, "w") as f:
        import json

        f.write(json.dumps(default_spec(), indent=2) + "\n")
    return 0


_COMMANDS = {"create": cmd_create, "run": cmd_run, "start": cmd_start, "state": cmd_state, "kill": cmd_kill,
             "delete": cmd_delete, "pause": cmd_pause, "resume": cmd_resume, "ps": cmd_ps, "list": cmd_list,
             "exec": cmd_exec, "spec": cmd_spec}
