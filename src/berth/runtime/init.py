"""Starting container processes: fork, namespaces, the init's rootfs work, and the final exec.

Two processes are forked per container, as runc does: a stage-1 process joins and unshares the namespaces (a new pid
namespace only applies to children), then forks the init, which builds the rootfs, pivots into it, drops privileges
and execs. They report to the runtime over a pipe: "U" (user namespace made: write the id maps), "P<pid>" (the
init's host pid), "R" (ready: it waits on exec.fifo for `start`), "E<kind>\\t<message>" (failed).

Safety: every module the init uses is imported here, at the top, before any fork; after pivot_root the init runs only
functions already loaded, never an import, never NSS. Every fd above 2 is closed before the chdir into the working
directory, and getcwd must then lie inside the container. `exec` marks itself non-dumpable before joining.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import sys

from berth.errors import BerthError, InvalidArgument, NotFound, RuntimeFailure, UnsafePath
from berth.runtime import devices, mounts
from berth.runtime.cgroups import CgroupV1, CgroupV2
from berth.runtime.launch import NS_FLAGS, Launch, ProcessPlan
from berth.util import linux

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start


if TYPE_CHECKING:
    import socket
    from typing import BinaryIO

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_KINDS: dict[str, type[BerthError]] = {"InvalidArgument": InvalidArgument, "UnsafePath": UnsafePath,
                                       "NotFound": NotFound}
_MAX_FD = 0x7FFFFFFF
_SOL_SOCKET = 1
_SCM_RIGHTS = 1


class _NoImports:
    """Installed first on sys.meta_path in the init (before pivot_root) and in exec (before setns): any import
    not already done would search sys.path, which then names directories of the container's image."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        raise ImportError(f"berth-runtime: import of {name!r} refused inside the container (a bug: import it "
                          "before fork)")


def _refuse_imports() -> None:
    sys.meta_path.insert(0, _NoImports())  # type: ignore[arg-type]
    sys.path_importer_cache.clear()


def _send_fd(sock: socket.socket, fd: int) -> None:
    """Hand fd over the console socket with the name runc uses; no `socket` module needed in the init."""
    sock.sendmsg([b"/dev/ptmx"], [(_SOL_SOCKET, _SCM_RIGHTS, struct.pack("i", fd))])


def _report(fd: int, exc: BaseException) -> None:
    message = str(exc).replace("\n", " ") or type(exc).__name__
    try:
        os.write(fd, f"E{type(exc).__name__}\t{message}\n".encode())
    except OSError:
        pass


def _read_line(reader: BinaryIO) -> bytes:
    return reader.readline()


def _error_from(line: bytes) -> BerthError:
    kind, _, message = line[1:].decode(errors="replace").rstrip("\n").partition("\t")
    return _KINDS.get(kind, RuntimeFailure)(message)


def _close_fds_except(keep: set[int]) -> None:
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _MAX_FD)


def spawn(launch: Launch | None, proc: ProcessPlan, cgroup: CgroupV1 | CgroupV2, *,
          join: list[tuple[str, str]] | None = None, fifo_fd: int | None = None,
          console: socket.socket | None = None, stdio: tuple[int, int, int] | None = None,
          preserve_fds: int = 0) -> int:
    """Start the container's init (launch given) or an exec'd process (launch None, join given).

    Returns the host pid once the process is ready (for an init: waiting on the exec fifo; for exec: about to
    exec). The calling process becomes a child subreaper, so the new process is its child and it may wait for it.
    """
    to_join = launch.join if launch is not None else (join or [])
    join_fds: list[tuple[int, int]] = []
    sync_r = sync_w = go_r = go_w = -1
    try:
        for kind, path in to_join:
            try:
                join_fds.append((NS_FLAGS[kind], os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as exc:
                raise NotFound(f"cannot open {kind} namespace {path}: {exc.strerror}") from exc
        sync_r, sync_w = os.pipe()
        go_r, go_w = os.pipe()
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        stage1 = os.fork()
        if stage1 == 0:
            try:
                os.close(sync_r)
                os.close(go_w)
                _stage1(launch, proc, join_fds, sync_w, go_r, fifo_fd, console, stdio, preserve_fds)
            except BaseException as exc:
                _report(sync_w, exc)
            finally:
                os._exit(1)
    except BaseException:
        for _, fd in join_fds:
            os.close(fd)
        for fd in (sync_r, sync_w, go_r, go_w):
            if fd >= 0:
                os.close(fd)
        raise
    for _, fd in join_fds:
        os.close(fd)
    os.close(sync_w)
    os.close(go_r)
    return _supervise_start(launch, cgroup, stage1, sync_r, go_w, _late_cgroup(launch))


def _late_cgroup(launch: Launch | None) -> bool:
    """Whether the init joins its cgroup while it builds the rootfs, rather than the stage-1 process before.

    Writing a pid into cgroup.procs can wait for an RCU grace period (milliseconds); done for the init, in
    parallel with its mount work, that wait is hidden. Not possible when a new cgroup namespace must be rooted at
    the container's cgroup, or a user namespace already needs the stage-1 process to wait for its id maps.
    """
    return launch is not None and not launch.new_user and not launch.new_ns_flags & linux.CLONE_NEWCGROUP


def _supervise_start(launch: Launch | None, cgroup: CgroupV1 | CgroupV2, stage1: int, sync_r: int,
                     go_w: int, late: bool) -> int:
    reader = os.fdopen(sync_r, "rb")
    pid: int | None = None
    error: BerthError | None = None
    pending: BerthError | None = None
    try:
        if launch is not None and launch.new_user:
            line = _read_line(reader)
            if line.startswith(b"E"):
                raise _error_from(line)
            if line != b"U\n":
                raise RuntimeFailure("container stage-1 process exited before creating its user namespace")
            _write_id_maps(stage1, launch)
        if not late:
            cgroup.add(stage1)
            os.write(go_w, b"G")
        ready = False
        while not (ready and pid is not None):
            line = _read_line(reader)
            if not line:
                break
            if line.startswith(b"P"):
                pid = int(line[1:])
                if late:
                    try:
                        cgroup.add(pid)
                        os.write(go_w, b"G")
                    except (OSError, RuntimeFailure) as exc:
                        # most likely the init failed already: its own report, read next, says why
                        pending = RuntimeFailure(f"cannot put the container init into its cgroup: {exc}")
                        try:
                            os.kill(pid, signal.SIGKILL)  # if it is still waiting for us: end it, then read EOF
                        except ProcessLookupError:
                            pass
            elif line == b"R\n":
                ready = True
            elif line.startswith(b"E"):
                error = _error_from(line)
        if error is None and pending is not None:
            error = pending
        if error is None and not ready:
            error = RuntimeFailure("container process exited before it was ready")
        if error is not None:
            raise error
        assert pid is not None
        return pid
    except BaseException:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        raise
    finally:
        reader.close()
        os.close(go_w)
        try:
            os.waitpid(stage1, 0)
        except ChildProcessError:
            pass


def _write_id_maps(pid: int, launch: Launch) -> None:
    for name, text in (("uid_map", launch.uid_map), ("gid_map", launch.gid_map)):
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as exc:
            raise RuntimeFailure(f"writing {name} {text.strip()!r}: {exc.strerror}") from exc


def _stage1(launch: Launch | None, proc: ProcessPlan, join_fds: list[tuple[int, int]], sync_w: int, go_r: int,
            fifo_fd: int | None, console: socket.socket | None, stdio: tuple[int, int, int] | None,
            preserve_fds: int) -> None:
    _refuse_imports()
    if stdio is not None:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
    # Before joining anything: nothing in the container may ptrace this (host) interpreter or open its
    # /proc/<pid>/exe (CVE-2016-9962, CVE-2019-5736). execve() makes the container's program dumpable again.
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    for flag, fd in join_fds:
        linux.setns(fd, flag)
        os.close(fd)
    if launch is not None and launch.new_user:
        linux.unshare(linux.CLONE_NEWUSER)
        os.write(sync_w, b"U\n")
    late = _late_cgroup(launch)
    if not late:
        if os.read(go_r, 1) != b"G":
            os._exit(1)
        os.close(go_r)
    if launch is not None and launch.new_user:
        # The maps are written: become the namespace's root, so that files the init creates (/dev, mount points)
        # belong to a mapped id rather than failing with EOVERFLOW.
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if launch is not None and launch.new_ns_flags:
        linux.unshare(launch.new_ns_flags)
    pid = os.fork()
    if pid == 0:
        try:
            if launch is not None:
                _init(launch, sync_w, console)
                console = None  # handed over (or never needed) during the init's own setup
            if late:
                # the runtime puts this process into the cgroup once it knows its pid: wait for that
                if os.read(go_r, 1) != b"G":
                    os._exit(1)
                os.close(go_r)
            _finalize(proc, sync_w, fifo_fd, console, preserve_fds)
        except BaseException as exc:
            _report(sync_w, exc)
        finally:
            os._exit(1)
    os.write(sync_w, f"P{pid}\n".encode())
    os._exit(0)


def _init(launch: Launch, sync_w: int, console: socket.socket | None) -> None:
    mounts.prepare_root(launch.rootfs, launch.rootfs_propagation)
    root_fd = os.open(launch.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for plan in launch.mounts:
            if plan.fstype == "cgroup":
                _mount_cgroupfs(root_fd, plan, launch)
            else:
                mounts.apply_mount(root_fd, plan)
        if launch.devices:
            devices.create_devices(root_fd, launch.devices, bind_from_host=launch.dev_bind, with_kcore=launch.kcore)
        os.close(mounts.mkdirs_in_root(root_fd, launch.process.cwd))
    finally:
        os.close(root_fd)
    mounts.pivot(launch.rootfs)
    mounts.set_root_propagation(launch.rootfs_propagation)
    if launch.process.terminal:
        if console is None:
            raise InvalidArgument("process.terminal is set but no console socket was given")
        master, slave = devices.open_console(launch.process.console_size)
        devices.mount_console(slave)
        _send_fd(console, master)
        os.close(master)
        console.close()
        devices.become_console_owner(slave)
    elif console is not None:
        console.close()
    if launch.session_keyring is not None:
        try:
            linux.join_session_keyring(launch.session_keyring)
        except OSError as exc:
            if exc.errno not in (38, 1):  # ENOSYS (no keys support), EPERM (keys restricted): go on, as runc does
                raise
    if launch.hostname is not None:
        linux.sethostname(launch.hostname)
    if launch.domainname is not None:
        linux.setdomainname(launch.domainname)
    for key, value in launch.sysctls:
        fd = os.open("/proc/sys/" + key.replace(".", "/"), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    for path in launch.readonly_paths:
        mounts.readonly_path(path)
    for path in launch.masked_paths:
        mounts.mask_path(path)
    if launch.readonly_root:
        mounts.readonly_root()


def _mount_cgroupfs(root_fd: int, plan: mounts.MountPlan, launch: Launch) -> None:
    """/sys/fs/cgroup in the container: its own cgroup directories, never the host's whole tree."""
    flags = plan.flags & ~linux.MS_RDONLY
    if launch.cgroup_v2:
        fd = mounts.open_target(root_fd, plan.destination, directory=True)
        try:
            if launch.new_ns_flags & linux.CLONE_NEWCGROUP:
                linux.mount("cgroup2", mounts.fd_path(fd), "cgroup2", plan.flags)
            else:
                linux.mount(launch.cgroup_binds[0][1], mounts.fd_path(fd), None, linux.MS_BIND)
                mounts.remount(root_fd, plan.destination, plan.flags & ~linux.MS_REC)
        finally:
            os.close(fd)
        return
    fd = mounts.open_target(root_fd, plan.destination, directory=True)
    try:
        linux.mount("tmpfs", mounts.fd_path(fd), "tmpfs", flags, "mode=755")
    finally:
        os.close(fd)
    for name, host_dir in launch.cgroup_binds:
        dest = plan.destination.rstrip("/") + "/" + name
        sub = mounts.open_target(root_fd, dest, directory=True)
        try:
            linux.mount(host_dir, mounts.fd_path(sub), None, linux.MS_BIND | linux.MS_REC)
        finally:
            os.close(sub)
        mounts.remount(root_fd, dest, plan.flags & (linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV
                                                    | linux.MS_NOEXEC | linux.MS_RELATIME))
    if plan.flags & linux.MS_RDONLY:
        top = mounts.reopen(root_fd, plan.destination)
        try:
            linux.mount("", mounts.fd_path(top), None, linux.MS_REMOUNT | linux.MS_BIND | plan.flags)
        finally:
            os.close(top)


def find_executable(name: str, env: tuple[str, ...], cwd: str) -> str:
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        if os.path.exists(path):   # a directory or a file without x: Go's exec.LookPath says EACCES (126)
            raise NotFound(f'exec: "{name}": permission denied')
        raise NotFound(f'exec: "{name}": stat {path}: no such file or directory')
    search = DEFAULT_PATH
    for entry in env:
        if entry.startswith("PATH="):
            search = entry[5:]
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NotFound(f'exec: "{name}": executable file not found in $PATH')


def _finalize(proc: ProcessPlan, sync_w: int, fifo_fd: int | None, console: socket.socket | None,
              preserve_fds: int) -> None:
    if console is not None and not proc.terminal:
        console.close()
    elif console is not None and proc.terminal and fifo_fd is None:
        # exec with a tty: the pty is opened in the container's devpts (we joined its mount namespace)
        master, slave = devices.open_console(proc.console_size)
        _send_fd(console, master)
        os.close(master)
        console.close()
        devices.become_console_owner(slave)
    if proc.oom_score_adj is not None:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(proc.oom_score_adj).encode())
        finally:
            os.close(fd)
    for kind, soft, hard in proc.rlimits:
        resource.setrlimit(kind, (soft, hard))
    keep = {sync_w} | set(range(3, 3 + preserve_fds))
    if fifo_fd is not None:
        keep.add(fifo_fd)
    _close_fds_except(keep)
    for fd in range(3, 3 + preserve_fds):
        os.set_inheritable(fd, True)
    # Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which is about to go: load it now.
    if proc.seccomp is not None and not proc.no_new_privileges:
        proc.seccomp.load()
    proc.caps.drop_bounding()
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(proc.groups))
    os.setresgid(proc.gid, proc.gid, proc.gid)
    os.setresuid(proc.uid, proc.uid, proc.uid)
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    # After closing every inherited fd: a leaked directory fd (CVE-2024-21626) cannot become the cwd.
    os.chdir(proc.cwd)
    cwd = os.getcwd()
    if not cwd.startswith("/"):
        raise UnsafePath(f"working directory {proc.cwd} lies outside the container ({cwd})")
    proc.caps.apply()
    path = find_executable(proc.args[0], proc.env, cwd)
    os.umask(proc.umask)
    if proc.no_new_privileges:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    env = {}
    for entry in proc.env:
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.write(sync_w, b"R\n")
    os.close(sync_w)
    try:
        if fifo_fd is not None:
            fifo = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fifo, b"0")
            os.close(fifo)
            os.close(fifo_fd)
        if proc.seccomp is not None and proc.no_new_privileges:
            proc.seccomp.load()
        os.execve(path, list(proc.args), env)
    except BaseException as exc:
        try:
            os.write(2, f"berth-runtime: exec {proc.args[0]}: {exc}\n".encode())
        except OSError:
            pass
        os._exit(127)
