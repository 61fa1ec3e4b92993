"""From a parsed Spec to a Launch: everything the container's init will need, computed and checked before fork.

All validation that can fail on bad input happens here, in the runtime's own process, before anything exists
(no cgroup, namespace or mount yet), so bad input leaves nothing behind. The init then only makes syscalls.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import resource
import stat

from berth.errors import InvalidArgument, NotFound
from berth.oci.record import record
from berth.oci.spec import Device, Process, Spec
from berth.runtime import caps as capabilities
from berth.runtime import devices, mounts, users
from berth.runtime.cgroups import CgroupV1, CgroupV2
from berth.runtime.seccomp import Filter, compile_filter
from berth.util import linux

NS_FLAGS = {"pid": linux.CLONE_NEWPID, "network": linux.CLONE_NEWNET, "mount": linux.CLONE_NEWNS,
            "ipc": linux.CLONE_NEWIPC, "uts": linux.CLONE_NEWUTS, "user": linux.CLONE_NEWUSER,
            "cgroup": linux.CLONE_NEWCGROUP, "time": linux.CLONE_NEWTIME}
NS_PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
                 "cgroup": "cgroup", "time": "time"}
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced"}
_RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}


@record(frozen=False)
class ProcessPlan:
    """The security and exec part, shared by a container's init and `exec`."""
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    umask: int
    caps: capabilities.CapPlan
    rlimits: list[tuple[int, int, int]]
    no_new_privileges: bool
    oom_score_adj: int | None
    seccomp: Filter | None
    terminal: bool
    console_size: tuple[int, int] | None


@record(frozen=False)
class Launch:
    """What the init does, in order: join/unshare namespaces, build the rootfs, pivot, harden, exec."""
    rootfs: str
    new_ns_flags: int  # every new namespace except user
    new_user: bool
    join: list[tuple[str, str]]  # (namespace type, path), user last
    uid_map: str
    gid_map: str
    mounts: list[mounts.MountPlan]
    cgroup_binds: list[tuple[str, str]]  # (name under the cgroup mount, host directory)
    cgroup_v2: bool
    devices: list[Device]
    dev_bind: bool
    kcore: bool
    hostname: str | None
    domainname: str | None
    sysctls: list[tuple[str, str]]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    readonly_root: bool
    rootfs_propagation: str | None
    process: ProcessPlan
    session_keyring: str | None = None  # "_ses.<id>", as runc names it; None: keep the caller's


def _env_with_home(env: tuple[str, ...], home: str) -> tuple[str, ...]:
    if any(e.startswith("HOME=") for e in env):
        return env
    return (*env, f"HOME={home}")


def plan_process(process: Process, rootfs_for_users: str | None) -> ProcessPlan:
    if rootfs_for_users is not None:
        passwd = users.parse_passwd(users.read_in_root(rootfs_for_users, "/etc/passwd") or "")
        groups = users.parse_group(users.read_in_root(rootfs_for_users, "/etc/group") or "")
    else:
        passwd, groups = [], []
    who = users.exec_user(passwd, groups, process.user.uid, process.user.gid, process.user.additional_gids)
    cap_plan = capabilities.CapPlan(process.capabilities)
    cap_plan.check_grantable()
    rlimits = []
    for r in process.rlimits:
        if r.type not in _RLIMITS:
            raise InvalidArgument(f"unknown rlimit type {r.type}")
        if r.soft > r.hard:
            raise InvalidArgument(f"rlimit {r.type}: soft limit {r.soft} exceeds hard limit {r.hard}")
        rlimits.append((_RLIMITS[r.type], r.soft, r.hard))
    return ProcessPlan(
        args=process.args, env=_env_with_home(process.env, who.home), cwd=process.cwd, uid=who.uid, gid=who.gid,
        groups=who.groups, umask=process.user.umask if process.user.umask is not None else 0o022, caps=cap_plan,
        rlimits=rlimits, no_new_privileges=process.no_new_privileges, oom_score_adj=process.oom_score_adj,
        seccomp=None, terminal=process.terminal, console_size=process.console_size)


def check_sysctl(key: str, spec: Spec) -> None:
    def private(kind: str) -> bool:
        return spec.linux.namespace(kind) is not None
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if not private("ipc"):
            raise InvalidArgument(f"sysctl {key!r} is not allowed in the host's IPC namespace")
    elif key.startswith("net."):
        if not private("network"):
            raise InvalidArgument(f"sysctl {key!r} is not allowed in the host's network namespace")
    elif key in ("kernel.hostname", "kernel.domainname"):
        if not private("uts"):
            raise InvalidArgument(f"sysctl {key!r} is not allowed in the host's UTS namespace")
    else:
        raise InvalidArgument(f"sysctl {key!r} is not in a separate kernel namespace")
    if "/" in key or ".." in key.split("."):
        raise InvalidArgument(f"invalid sysctl name {key!r}")


def plan_launch(spec: Spec, bundle: str, cgroup: CgroupV1 | CgroupV2) -> Launch:
    if spec.process is None:
        raise InvalidArgument("config.json: process is missing: there is nothing to run")
    rootfs = spec.root.path if spec.root.path.startswith("/") else os.path.join(bundle, spec.root.path)
    rootfs = os.path.realpath(rootfs)
    try:
        if not stat.S_ISDIR(os.stat(rootfs).st_mode):
            raise InvalidArgument(f"rootfs {rootfs} is not a directory")
    except FileNotFoundError as exc:
        raise NotFound(f"rootfs ({rootfs}) does not exist") from exc
    lx = spec.linux
    if lx.namespace("mount") is None:
        raise InvalidArgument("config.json: berth-runtime needs a mount namespace (add {\"type\": \"mount\"})")
    new_flags, join, new_user = 0, [], False
    for ns in lx.namespaces:
        if ns.path is not None:
            if not os.path.exists(ns.path):
                raise NotFound(f"{ns.type} namespace path {ns.path} does not exist")
            join.append((ns.type, ns.path))
        elif ns.type == "user":
            new_user = True
        else:
            new_flags |= NS_FLAGS[ns.type]
    join.sort(key=lambda item: item[0] == "user")
    in_userns = lx.namespace("user") is not None
    if in_userns and new_user and not (lx.uid_mappings and lx.gid_mappings):
        raise InvalidArgument("config.json: a new user namespace needs linux.uidMappings and linux.gidMappings")
    if (lx.uid_mappings or lx.gid_mappings) and not in_userns:
        raise InvalidArgument("config.json: uid/gid mappings given without a user namespace")
    filesystems = mounts.known_filesystems()
    mount_plans = [mounts.plan_mount(m, bundle, filesystems) for m in spec.mounts]
    binds: list[tuple[str, str]] = []
    if any(p.fstype == "cgroup" for p in mount_plans):
        if isinstance(cgroup, CgroupV1):
            binds = sorted({(os.path.basename(mp), cgroup.dir(ctrl)) for ctrl, mp in cgroup.hierarchies.items()})
        else:
            binds = [("", cgroup.dir)]
    for key in lx.sysctl:
        check_sysctl(key, spec)
    for kind in spec.hooks:
        if kind in ("createContainer", "startContainer") and spec.hooks[kind]:
            raise InvalidArgument(f"hooks.{kind} are not supported by berth-runtime")
    proc = plan_process(spec.process, rootfs)
    if lx.seccomp is not None:
        proc.seccomp = compile_filter(lx.seccomp)
    dev_is_bind = any(p.destination.rstrip("/") == "/dev" and p.is_bind for p in mount_plans)
    return Launch(
        rootfs=rootfs, new_ns_flags=new_flags, new_user=new_user, join=join,
        uid_map="".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in lx.uid_mappings),
        gid_map="".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in lx.gid_mappings),
        mounts=mount_plans, cgroup_binds=binds, cgroup_v2=isinstance(cgroup, CgroupV2),
        devices=[] if dev_is_bind else devices.device_list(lx.devices), dev_bind=in_userns,
        kcore=os.path.exists("/proc/kcore"), hostname=spec.hostname, domainname=spec.domainname,
        sysctls=sorted(lx.sysctl.items()), masked_paths=lx.masked_paths, readonly_paths=lx.readonly_paths,
        readonly_root=spec.root.readonly, rootfs_propagation=lx.rootfs_propagation, process=proc)
