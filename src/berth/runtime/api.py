"""berth's built-in OCI runtime, as a Python API (the `berth-runtime` command is a thin shell over it).

The engine and the per-container monitor call these in-process instead of exec'ing a runtime binary:

    pid = create("web", "/run/berth/b/web", "/run/berth/runtime", stdio=(0, w, w))
    start("web", root)                       # the init execs process.args
    status = wait(pid)                       # the caller is a child subreaper: the init is its child
    delete("web", root)

create(container_id, bundle, state_root, *, console_socket=None, pid_file=None, stdio=None, preserve_fds=0) -> int
start(container_id, state_root) -> None
state(container_id, state_root) -> ContainerReport           (.to_json() is runc's `state` JSON)
list_containers(state_root) -> list[ContainerReport]
kill(container_id, state_root, sig=SIGTERM, *, all_processes=False) -> None
delete(container_id, state_root, *, force=False) -> None
exec_process(container_id, state_root, process, *, console_socket=None, pid_file=None, stdio=None) -> int
pause(container_id, state_root) / resume(container_id, state_root) -> None
processes(container_id, state_root) -> list[int]
oom_killed(container_id, state_root) -> bool                  (read before delete)
wait(pid) -> int                                             (exit code, 128+signal when killed)

Errors are berth.errors kinds: NotFound (no such container, missing rootfs), Conflict (id taken, wrong state),
InvalidArgument/UnsafePath (bad config.json or rootfs), RuntimeFailure (the kernel refused something).
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import select
import signal
import time

from berth.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from berth.oci.record import field, record
from berth.oci.spec import Process, Spec
from berth.runtime import init, jsonio, launch
from berth.runtime.cgroups import CgroupV1, CgroupV2, from_record, open_cgroup
from berth.runtime.seccomp import compile_filter
from berth.runtime.state import OCI_VERSION, ContainerState, StateStore, Status, process_start_time
from berth.util.atomic import write_atomic

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start


if TYPE_CHECKING:
    import socket

    StrPath = str | os.PathLike[str]  # paths may be str or Path; pathlib itself stays off the start path
    from typing import Any

__all__ = ["ContainerReport", "create", "delete", "exec_process", "kill", "list_containers", "load_spec",
           "oom_killed", "pause", "processes", "resume", "start", "state", "wait"]


@record
class ContainerReport:
    """What `state` says about a container (runc's state JSON)."""
    id: str
    status: Status
    pid: int
    bundle: str
    rootfs: str
    created: str
    owner: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ociVersion": OCI_VERSION, "id": self.id, "pid": self.pid,
                               "status": str(self.status), "bundle": self.bundle, "rootfs": self.rootfs,
                               "created": self.created, "owner": self.owner}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def load_spec(bundle: StrPath) -> Spec:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = jsonio.loads(f.read())
    except FileNotFoundError as exc:
        raise NotFound(f"bundle {bundle}: config.json does not exist") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"bundle {bundle}: config.json is not valid JSON: {exc}") from exc
    return Spec.from_json(raw)


def _now() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000)) + f".{t % 1_000_000_000:09d}Z"


def _connect_console(path: str) -> socket.socket:
    import socket  # only containers with a terminal pay for it; imported here, in the runtime, before any fork

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"console socket {path}: {exc.strerror}") from exc
    return sock


def _remove_dir(path: str) -> None:
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def _run_hooks(spec: Spec, kind: str, report: ContainerReport) -> None:
    hooks = spec.hooks.get(kind) or ()
    if not hooks:
        return
    import subprocess  # only bundles with hooks pay for it; runs in the runtime's own process, never the init

    payload = jsonio.dumps(report.to_json()).encode()
    for hook in hooks:
        env = dict(e.split("=", 1) for e in hook.env if "=" in e)
        try:
            proc = subprocess.run(list(hook.args) or [hook.path], executable=hook.path, input=payload, env=env,
                                  capture_output=True, timeout=hook.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{kind} hook {hook.path} failed: {exc}") from exc
        if proc.returncode != 0:
            raise RuntimeFailure(f"{kind} hook {hook.path} exited with {proc.returncode}: "
                                 f"{proc.stderr.decode(errors='replace').strip()}")


def create(container_id: str, bundle: StrPath, state_root: StrPath, *, console_socket: str | socket.socket | None = None,
           pid_file: StrPath | None = None, stdio: tuple[int, int, int] | None = None, preserve_fds: int = 0,
           spec: Spec | None = None, new_keyring: bool = True) -> int:
    """Create the container: namespaces, cgroup, rootfs; its init waits for `start`. Returns the init's pid.

    The calling process becomes a child subreaper (PR_SET_CHILD_SUBREAPER): the init is reparented to it.
    On any failure nothing is left: no cgroup, no state directory, no process. `spec` spares a second parse
    when the caller has read the bundle's config.json already.
    """
    store = StateStore(os.fspath(state_root))
    bundle = os.path.abspath(bundle)
    if spec is None:
        spec = load_spec(bundle)
    if spec.process is not None and spec.process.terminal and console_socket is None:
        raise InvalidArgument("cannot allocate a tty without a console socket (process.terminal is true)")
    cgroup = open_cgroup(spec.linux.cgroups_path, container_id)
    plan = launch.plan_launch(spec, str(bundle), cgroup)
    if new_keyring:
        plan.session_keyring = f"_ses.{container_id}"
    state_dir = store.reserve(container_id)
    console: socket.socket | None = None
    fifo_fd = -1
    pid: int | None = None
    try:
        cgroup.create(spec.linux.resources)
        try:
            fifo = store.fifo(container_id)
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)
            fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
            if console_socket is not None and plan.process.terminal:
                console = _connect_console(console_socket) if isinstance(console_socket, str) else console_socket
            pid = init.spawn(plan, plan.process, cgroup, fifo_fd=fifo_fd, console=console, stdio=stdio,
                             preserve_fds=preserve_fds)
            start_time = process_start_time(pid)
            if start_time is None:
                raise RuntimeFailure(f"container {container_id}: the init exited during create")
            record = ContainerState(container_id, pid, start_time, str(bundle), plan.rootfs, _now(),
                                    cgroup.to_record(), dict(spec.annotations))
            with open(os.path.join(state_dir, "config.json"), "w") as f:
                f.write(jsonio.dumps(spec.to_json()))
            store.save(record)
            report = _report(store, record)
            _run_hooks(spec, "createRuntime", report)
            _run_hooks(spec, "prestart", report)
            if pid_file is not None:
                _write_pid_file(pid_file, pid)
            return pid
        except BaseException:
            if pid is not None:
                _kill_and_reap(pid)
            _kill_all(cgroup)
            cgroup.destroy()
            raise
        finally:
            if fifo_fd >= 0:
                os.close(fifo_fd)
            if console is not None:
                console.close()
            if plan.process.seccomp is not None:
                plan.process.seccomp.release()
    except BaseException:
        _remove_dir(state_dir)
        raise


def _open_cgroup(record: ContainerState) -> CgroupV1 | CgroupV2:
    return from_record(record.cgroup)


def _write_pid_file(path: StrPath, pid: int) -> None:
    write_atomic(os.path.abspath(path), str(pid).encode(), durable=False)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        for _ in range(500):
            if process_start_time(pid) is None:
                return
            time.sleep(0.002)


def _kill_all(cgroup: CgroupV1 | CgroupV2) -> None:
    for _ in range(100):
        pids = cgroup.pids()
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in pids:
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.005)
    raise RuntimeFailure(f"processes {cgroup.pids()} survive SIGKILL")


def _status(store: StateStore, record: ContainerState) -> Status:
    if not store.alive(record):
        return Status.STOPPED
    if os.path.exists(store.fifo(record.id)):
        return Status.CREATED
    if _open_cgroup(record).is_frozen():
        return Status.PAUSED
    return Status.RUNNING


def _report(store: StateStore, record: ContainerState) -> ContainerReport:
    status = _status(store, record)
    return ContainerReport(record.id, status, 0 if status is Status.STOPPED else record.pid, record.bundle,
                           record.rootfs, record.created, record.owner, dict(record.annotations))


def _saved_spec(store: StateStore, container_id: str) -> Spec:
    with open(os.path.join(store.dir(container_id), "config.json"), "rb") as f:
        return Spec.from_json(jsonio.loads(f.read()))


def start(container_id: str, state_root: StrPath) -> None:
    """Let a created container's init exec its process."""
    store = StateStore(os.fspath(state_root))
    with store.lock(container_id):
        record = store.load(container_id)
        status = _status(store, record)
        if status is not Status.CREATED:
            raise Conflict(f"cannot start a container that is {status}; only a created one can be started")
        fifo = store.fifo(container_id)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            while True:
                readable, _, _ = select.select([fd], [], [], 0.05)
                if readable and os.read(fd, 1):
                    break
                if not store.alive(record):
                    raise RuntimeFailure(f"container {container_id} exited before it could be started")
                if readable:
                    time.sleep(0.001)  # EOF: the init has not opened its end yet
        finally:
            os.close(fd)
        os.unlink(fifo)
        _run_hooks(_saved_spec(store, container_id), "poststart", _report(store, record))


def state(container_id: str, state_root: StrPath) -> ContainerReport:
    store = StateStore(os.fspath(state_root))
    return _report(store, store.load(container_id))


def list_containers(state_root: StrPath) -> list[ContainerReport]:
    store = StateStore(os.fspath(state_root))
    out = []
    for cid in store.ids():
        try:
            out.append(_report(store, store.load(cid)))
        except NotFound:
            continue
    return out


def kill(container_id: str, state_root: StrPath, sig: int = signal.SIGTERM, *, all_processes: bool = False) -> None:
    store = StateStore(os.fspath(state_root))
    with store.lock(container_id):
        record = store.load(container_id)
        status = _status(store, record)
        if status is Status.STOPPED:
            raise Conflict(f"container {container_id} is not running")
        if all_processes:
            for p in _open_cgroup(record).pids():
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            return
        try:
            os.kill(record.pid, sig)
        except ProcessLookupError as exc:
            raise Conflict(f"container {container_id} is not running") from exc


def delete(container_id: str, state_root: StrPath, *, force: bool = False) -> None:
    """Remove a stopped (or created) container: its processes, cgroup and state. A running one needs force."""
    store = StateStore(os.fspath(state_root))
    with store.lock(container_id):
        record = store.load(container_id)
        status = _status(store, record)
        if status in (Status.RUNNING, Status.PAUSED) and not force:
            raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
        cgroup = _open_cgroup(record)
        if status is Status.PAUSED:
            cgroup.set_frozen(False)
        if status is not Status.STOPPED:
            _kill_and_reap(record.pid)
        _kill_all(cgroup)
        cgroup.destroy()
        try:
            spec = _saved_spec(store, container_id)
        except (OSError, ValueError):
            spec = None
        report = ContainerReport(record.id, Status.STOPPED, 0, record.bundle, record.rootfs, record.created,
                                 record.owner, dict(record.annotations))
        _remove_dir(store.dir(container_id))
        if spec is not None:
            try:
                _run_hooks(spec, "poststop", report)
            except RuntimeFailure:
                pass  # the spec says poststop failures are only logged; the container is gone either way


def pause(container_id: str, state_root: StrPath) -> None:
    store = StateStore(os.fspath(state_root))
    with store.lock(container_id):
        record = store.load(container_id)
        status = _status(store, record)
        if status is not Status.RUNNING:
            raise Conflict(f"container {container_id} is {status}, not running: cannot pause it")
        _open_cgroup(record).set_frozen(True)


def resume(container_id: str, state_root: StrPath) -> None:
    store = StateStore(os.fspath(state_root))
    with store.lock(container_id):
        record = store.load(container_id)
        status = _status(store, record)
        if status is not Status.PAUSED:
            raise Conflict(f"container {container_id} is {status}, not paused: cannot resume it")
        _open_cgroup(record).set_frozen(False)


def processes(container_id: str, state_root: StrPath) -> list[int]:
    store = StateStore(os.fspath(state_root))
    return _open_cgroup(store.load(container_id)).pids()


def oom_killed(container_id: str, state_root: StrPath) -> bool:
    store = StateStore(os.fspath(state_root))
    return _open_cgroup(store.load(container_id)).oom_kills() > 0


def exec_process(container_id: str, state_root: StrPath, process: Process, *,
                 console_socket: str | socket.socket | None = None,
                 pid_file: StrPath | None = None, stdio: tuple[int, int, int] | None = None,
                 preserve_fds: int = 0) -> int:
    """Run another process in a running container: its namespaces, cgroup, seccomp filter and the capabilities,
    user and rlimits of `process`. Returns its host pid (the caller is its subreaper)."""
    store = StateStore(os.fspath(state_root))
    with store.lock(container_id):
        record = store.load(container_id)
        status = _status(store, record)
        if status not in (Status.RUNNING, Status.CREATED):
            raise Conflict(f"cannot exec in a {status} container {container_id}")
        if process.terminal and console_socket is None:
            raise InvalidArgument("cannot allocate a tty without a console socket (process.terminal is true)")
        spec = _saved_spec(store, container_id)
        proc = launch.plan_process(process, record.rootfs)
        join = sorted(((ns.type, f"/proc/{record.pid}/ns/{launch.NS_PROC_NAMES[ns.type]}") for ns in spec.linux.namespaces),
                      key=lambda item: item[0] == "user")
        console = None
        if console_socket is not None and process.terminal:
            console = _connect_console(console_socket) if isinstance(console_socket, str) else console_socket
        try:
            if spec.linux.seccomp is not None:
                proc.seccomp = compile_filter(spec.linux.seccomp)
            pid = init.spawn(None, proc, _open_cgroup(record), join=join, console=console, stdio=stdio,
                             preserve_fds=preserve_fds)
        finally:
            if console is not None:
                console.close()
            if proc.seccomp is not None:
                proc.seccomp.release()
        if pid_file is not None:
            _write_pid_file(pid_file, pid)
        return pid


def wait(pid: int) -> int:
    """Wait for a child (or subreaped) process; its exit code, or 128+signal if a signal killed it."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError as exc:
            raise RuntimeFailure(f"process {pid} is not a child of this process: cannot wait for it") from exc
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)
