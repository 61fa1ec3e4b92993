"""From a container's configuration to an OCI runtime spec (config.json): pure, with Docker's defaults
(../shared/reference/security-cases.md §1): 14 capabilities, Docker's seccomp profile, masked and read-only
paths, /dev as a tmpfs, a 64 MiB /dev/shm, the devices cgroup allow-list, /etc/{hostname,hosts,resolv.conf}
bind-mounted from the container's directory.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from berth.engine import mounts as user_mounts
from berth.engine.containers import ContainerConfig
from berth.errors import InvalidArgument
from berth.runtime.caps import BITS as CAP_BITS
from berth.runtime.seccomp import load_default_profile, profile_to_seccomp

DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                "CAP_KILL", "CAP_AUDIT_WRITE")
ALL_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
            "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
            "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE")
MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# --init: Docker binds its init (tini) read-only at /sbin/docker-init and runs `/sbin/docker-init -- <command>`.
# Debian's tini package ships this static build (dockerd's docker-init is a symlink to it).
INIT_BINARY = "/usr/bin/tini-static"
INIT_PATH = "/sbin/docker-init"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
            "rtprio", "rttime", "sigpending", "stack", "as"}
# Docker's devices cgroup defaults; runc-style runtimes append their own non-removable allow list.
_DEVICES = [{"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]


@dataclass(frozen=True, slots=True)
class SpecPaths:
    """Files of the container's directory that the spec bind-mounts, and where its cgroup goes."""
    hostname: str
    hosts: str
    resolv_conf: str
    cgroup_parent: str = "/berth"
    init_binary: str = INIT_BINARY   # on the host: what `--init` binds at /sbin/docker-init


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"


def normalize_capability(name: str) -> str:
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in ALL_CAPS:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return full


@functools.cache
def all_capabilities() -> tuple[str, ...]:
    """What "all capabilities" grants (--privileged, --cap-add ALL): those in berthd's own bounding set, as
    containerd's WithAllCurrentCapabilities does. A daemon in a restricted sandbox cannot give more, and asking
    for more would fail every privileged start."""
    try:
        with open("/proc/self/status") as f:
            bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return ALL_CAPS
    return tuple(c for c in ALL_CAPS if bounding >> CAP_BITS[c] & 1)


def capabilities(config: ContainerConfig) -> list[str]:
    """Docker's rule: start from the defaults (or all, when privileged), add, then drop; ALL works in both."""
    if config.privileged:
        return list(all_capabilities())
    adds = [normalize_capability(c) for c in config.cap_add]
    drops = [normalize_capability(c) for c in config.cap_drop]
    caps = list(all_capabilities()) if "ALL" in adds else \
        list(DEFAULT_CAPS) + [c for c in adds if c not in DEFAULT_CAPS]
    if "ALL" in drops:
        return [c for c in adds if c != "ALL"] if "ALL" not in adds else []
    return [c for c in caps if c not in drops]


def merged_env(config: ContainerConfig) -> list[str]:
    env = list(config.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    if config.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    hostname = config.hostname
    return [f"HOSTNAME={hostname}"] + [e for e in env if not e.startswith("HOSTNAME=")] if hostname else env


def _security(config: ContainerConfig) -> tuple[bool, str | None]:
    """(no_new_privileges, seccomp: None = Docker's default, "" = unconfined, else a profile's JSON)."""
    nnp, seccomp = False, None
    for opt in config.security_opt:
        key, sep, value = opt.partition("=" if "=" in opt else ":")
        if key == "no-new-privileges":
            nnp = value.lower() in ("", "true", "1") if sep else True
        elif key == "seccomp":
            seccomp = "" if value == "unconfined" else value
        elif key in ("apparmor", "label"):
            continue   # no LSM on these machines; accepted and ignored as Docker does without AppArmor
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return nnp, seccomp


def _rlimits(config: ContainerConfig) -> list[dict[str, Any]]:
    out = []
    for u in config.ulimits:
        if u.name not in _RLIMITS:
            raise InvalidArgument(f"invalid ulimit type: {u.name}")
        if u.soft > u.hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}")
        out.append({"type": f"RLIMIT_{u.name.upper()}", "hard": u.hard, "soft": u.soft})
    return out


def rlimits_json(config: ContainerConfig) -> list[dict[str, Any]]:
    """The spec's process.rlimits for config (an exec's process gets the container's, as with dockerd)."""
    return _rlimits(config)


def resources_json(config: ContainerConfig) -> dict[str, Any]:
    """The spec's linux.resources for config (docker update applies them to a running container's cgroup)."""
    return _resources(config)


def _resources(config: ContainerConfig) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": True, "access": "rwm"}] if config.privileged else list(_DEVICES)}
    memory: dict[str, Any] = {}
    if config.memory:
        memory["limit"] = config.memory
        swap = config.memory_swap
        memory["swap"] = -1 if swap == -1 else (swap if swap > 0 else 2 * config.memory)
    if config.memory_reservation:
        memory["reservation"] = config.memory_reservation
    if config.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if config.cpu_shares:
        cpu["shares"] = config.cpu_shares
    if config.nano_cpus:
        cpu["period"] = 100_000
        cpu["quota"] = config.nano_cpus * 100_000 // 1_000_000_000
    else:
        if config.cpu_period:
            cpu["period"] = config.cpu_period
        if config.cpu_quota:
            cpu["quota"] = config.cpu_quota
    if config.cpuset_cpus:
        cpu["cpus"] = config.cpuset_cpus
    if config.cpuset_mems:
        cpu["mems"] = config.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if config.pids_limit > 0:
        res["pids"] = {"limit": config.pids_limit}
    return res


def _mounts(config: ContainerConfig, paths: SpecPaths) -> list[dict[str, Any]]:
    """Docker's default mounts (less those a user mount replaces), then the user's, parents first."""
    defaults = _default_mounts(config, paths)
    return [m for m in defaults if not user_mounts.replaces_default(m["destination"], config.mounts)] + \
        user_mounts.spec_mounts(config.mounts)


def _default_mounts(config: ContainerConfig, paths: SpecPaths) -> list[dict[str, Any]]:
    ro = [] if config.privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={config.shm_size or 64 * 1024 * 1024}"]},
        {"destination": "/etc/resolv.conf", "type": "bind", "source": paths.resolv_conf,
         "options": ["rbind", "rprivate"]},
        {"destination": "/etc/hostname", "type": "bind", "source": paths.hostname, "options": ["rbind", "rprivate"]},
        {"destination": "/etc/hosts", "type": "bind", "source": paths.hosts, "options": ["rbind", "rprivate"]},
    ]


def validate(config: ContainerConfig) -> None:
    """The checks build_spec would fail on, run at create time so a bad option never makes a container."""
    capabilities(config)
    _, seccomp = _security(config)
    if seccomp:
        _profile(seccomp)
    _rlimits(config)


@functools.cache
def _default_profile() -> dict[str, Any]:
    return load_default_profile()


def build_spec(config: ContainerConfig, container_id: str, user: ResolvedUser, paths: SpecPaths,
               netns: str | None = "", init_path: str | None = None,
               args: Sequence[str] | None = None) -> dict[str, Any]:
    """The OCI spec. netns: "" = a new network namespace, None = the host's, a path = join that one."""
    caps = capabilities(config)
    nnp, seccomp_choice = _security(config)
    process_args = list(args if args is not None else config.args)
    if not process_args:
        raise InvalidArgument("no command specified: the image has no CMD or ENTRYPOINT; give one after the image")
    init_path = init_path or (INIT_PATH if config.init else None)
    if init_path:
        process_args = [init_path, "--", *process_args]
    process: dict[str, Any] = {
        "terminal": config.tty,
        "user": {"uid": user.uid, "gid": user.gid, **({"additionalGids": list(user.groups)} if user.groups else {})},
        "args": process_args,
        "env": merged_env(config),
        "cwd": config.working_dir or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": nnp,
        "oomScoreAdj": config.oom_score_adj,
    }
    if config.tty and config.console_size != (0, 0):
        process["consoleSize"] = {"height": config.console_size[0], "width": config.console_size[1]}
    rlimits = _rlimits(config)
    if rlimits:
        process["rlimits"] = rlimits
    namespaces: list[dict[str, Any]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns is not None:
        namespaces.append({"type": "network", **({"path": netns} if netns else {})})
    sysctls = dict(config.sysctls)
    if netns is not None and not config.privileged:
        sysctls.setdefault("net.ipv4.ip_unprivileged_port_start", "0")
        sysctls.setdefault("net.ipv4.ping_group_range", "0 2147483647")
    linux: dict[str, Any] = {
        "resources": _resources(config),
        "cgroupsPath": f"{paths.cgroup_parent}/{container_id}",
        "namespaces": namespaces,
        "sysctl": sysctls,
    }
    propagation = user_mounts.rootfs_propagation(config.mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation
    if not config.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if seccomp_choice is None:
            linux["seccomp"] = profile_to_seccomp(_default_profile(), caps).to_json()
        elif seccomp_choice:
            linux["seccomp"] = profile_to_seccomp(_profile(seccomp_choice), caps).to_json()
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": config.readonly_rootfs},
        "hostname": config.hostname,
        **({"domainname": config.domainname} if config.domainname else {}),
        "mounts": _mounts(config, paths) + ([{"destination": INIT_PATH, "type": "bind", "source": paths.init_binary,
                                               "options": ["rbind", "ro", "rprivate"]}] if config.init else []),
        "linux": linux,
    }


def _profile(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument("invalid --security-opt seccomp=...: the profile is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument("invalid --security-opt seccomp=...: the profile must be a JSON object")
    return value
