"""The OCI runtime spec (config.json of a bundle) for Linux, as frozen typed dataclasses.

Follows opencontainers/runtime-spec 1.0/1.1 (config.md, config-linux.md). camelCase lives only in from_json and
to_json; from_json validates what a runtime would otherwise trip over later (unknown namespace types, relative mount
destinations, negative ids...) and raises InvalidArgument naming the field. Checks that need the host or the rootfs
(does the filesystem type exist, is the destination a symlink) belong to the runtime.

May import: berth.errors. stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping

from berth.errors import InvalidArgument
from berth.oci.record import field, record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start
if TYPE_CHECKING:
    from typing import Any


NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
SECCOMP_ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                   "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
SECCOMP_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
               "SCMP_CMP_MASKED_EQ")


def _obj(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"config.json: {where} must be an object, not {type(raw).__name__}")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidArgument(f"config.json: {where} must be an array, not {type(raw).__name__}")
    return raw


def _strs(raw: Any, where: str) -> tuple[str, ...]:
    items = _list(raw, where)
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"config.json: {where} must hold strings, found {item!r}")
    return tuple(items)


def _int(raw: Any, where: str, *, minimum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidArgument(f"config.json: {where} must be an integer, not {raw!r}")
    if minimum is not None and raw < minimum:
        raise InvalidArgument(f"config.json: {where} must be >= {minimum}, not {raw}")
    return raw


def _opt_int(raw: Any, where: str, *, minimum: int | None = None) -> int | None:
    return None if raw is None else _int(raw, where, minimum=minimum)


def _str(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise InvalidArgument(f"config.json: {where} must be a string, not {raw!r}")
    return raw


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != () and v != {}}


@record
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> User:
        return cls(_int(raw.get("uid", 0), "process.user.uid", minimum=0),
                   _int(raw.get("gid", 0), "process.user.gid", minimum=0),
                   _opt_int(raw.get("umask"), "process.user.umask", minimum=0),
                   tuple(_int(g, "process.user.additionalGids", minimum=0)
                         for g in _list(raw.get("additionalGids"), "process.user.additionalGids")))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"uid": self.uid, "gid": self.gid, "umask": self.umask,
                           "additionalGids": list(self.additional_gids) or None})


@record
class Capabilities:
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Capabilities:
        return cls(*(_strs(raw.get(k), f"process.capabilities.{k}")
                     for k in ("bounding", "effective", "inheritable", "permitted", "ambient")))

    def to_json(self) -> dict[str, Any]:
        return {k: list(getattr(self, k)) for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
                if getattr(self, k)}


@record
class Rlimit:
    type: str
    hard: int
    soft: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Rlimit:
        kind = _str(raw.get("type"), "process.rlimits[].type")
        if not kind.startswith("RLIMIT_"):
            raise InvalidArgument(f"config.json: unknown rlimit type {kind!r}")
        return cls(kind, _int(raw.get("hard"), f"rlimit {kind} hard", minimum=0),
                   _int(raw.get("soft"), f"rlimit {kind} soft", minimum=0))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "hard": self.hard, "soft": self.soft}


@record
class Process:
    args: tuple[str, ...]
    cwd: str = "/"
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Process:
        args = _strs(raw.get("args"), "process.args")
        if not args:
            raise InvalidArgument("config.json: process.args must name at least the program to run")
        cwd = _str(raw.get("cwd", "/"), "process.cwd")
        if not cwd.startswith("/"):
            raise InvalidArgument(f"config.json: process.cwd {cwd!r} must be an absolute path")
        size = _obj(raw.get("consoleSize"), "process.consoleSize")
        caps = raw.get("capabilities")
        return cls(
            args=args, cwd=cwd, env=_strs(raw.get("env"), "process.env"),
            terminal=bool(raw.get("terminal", False)),
            console_size=(_int(size.get("height", 0), "consoleSize.height", minimum=0),
                          _int(size.get("width", 0), "consoleSize.width", minimum=0)) if size else None,
            user=User.from_json(_obj(raw.get("user"), "process.user")),
            capabilities=Capabilities.from_json(_obj(caps, "process.capabilities")) if caps is not None else None,
            rlimits=tuple(Rlimit.from_json(_obj(r, "process.rlimits[]"))
                          for r in _list(raw.get("rlimits"), "process.rlimits")),
            no_new_privileges=bool(raw.get("noNewPrivileges", False)),
            oom_score_adj=_opt_int(raw.get("oomScoreAdj"), "process.oomScoreAdj"),
            apparmor_profile=raw.get("apparmorProfile") or None,
            selinux_label=raw.get("selinuxLabel") or None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"terminal": self.terminal, "user": self.user.to_json(), "args": list(self.args),
                               "env": list(self.env), "cwd": self.cwd}
        if self.console_size:
            out["consoleSize"] = {"height": self.console_size[0], "width": self.console_size[1]}
        if self.capabilities is not None:
            out["capabilities"] = self.capabilities.to_json()
        if self.rlimits:
            out["rlimits"] = [r.to_json() for r in self.rlimits]
        if self.no_new_privileges:
            out["noNewPrivileges"] = True
        return out | _drop_none({"oomScoreAdj": self.oom_score_adj, "apparmorProfile": self.apparmor_profile,
                                 "selinuxLabel": self.selinux_label})


@record
class Root:
    path: str
    readonly: bool = False

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Root:
        path = _str(raw.get("path"), "root.path")
        if not path:
            raise InvalidArgument("config.json: root.path is empty")
        return cls(path, bool(raw.get("readonly", False)))

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "readonly": self.readonly} if self.readonly else {"path": self.path}


@record
class Mount:
    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Mount:
        dest = _str(raw.get("destination"), "mounts[].destination")
        if not dest.startswith("/"):
            raise InvalidArgument(f"config.json: mount destination {dest!r} is not an absolute path")
        if any(part == ".." for part in dest.split("/")):
            raise InvalidArgument(f"config.json: mount destination {dest!r} contains '..'")
        kind = raw.get("type")
        source = raw.get("source")
        return cls(dest, _str(kind, f"mount {dest} type") if kind is not None else None,
                   _str(source, f"mount {dest} source") if source is not None else None,
                   _strs(raw.get("options"), f"mount {dest} options"))

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"destination": self.destination, "type": self.type, "source": self.source,
                           "options": list(self.options) or None})


@record
class Namespace:
    type: str
    path: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Namespace:
        kind = _str(raw.get("type"), "linux.namespaces[].type")
        if kind not in NAMESPACE_TYPES:
            raise InvalidArgument(f"config.json: unknown namespace type {kind!r} "
                                  f"(known: {', '.join(NAMESPACE_TYPES)})")
        path = raw.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise InvalidArgument(f"config.json: {kind} namespace path {path!r} must be absolute")
        return cls(kind, path or None)

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"type": self.type, "path": self.path})


@record
class IdMapping:
    container_id: int
    host_id: int
    size: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> IdMapping:
        return cls(_int(raw.get("containerID"), "idMapping.containerID", minimum=0),
                   _int(raw.get("hostID"), "idMapping.hostID", minimum=0),
                   _int(raw.get("size"), "idMapping.size", minimum=1))

    def to_json(self) -> dict[str, Any]:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.size}


@record
class Device:
    """A device node to create in the container's /dev."""
    type: str  # c, b, u, p
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Device:
        kind = _str(raw.get("type"), "linux.devices[].type")
        path = _str(raw.get("path"), "linux.devices[].path")
        if kind not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"config.json: device {path} has unknown type {kind!r}")
        if not path.startswith("/dev/") or ".." in path.split("/"):
            raise InvalidArgument(f"config.json: device path {path!r} must lie under /dev")
        return cls(kind, path, _int(raw.get("major", 0), "device major", minimum=0),
                   _int(raw.get("minor", 0), "device minor", minimum=0),
                   _opt_int(raw.get("fileMode"), "device fileMode", minimum=0),
                   _opt_int(raw.get("uid"), "device uid", minimum=0),
                   _opt_int(raw.get("gid"), "device gid", minimum=0))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"type": self.type, "path": self.path, "major": self.major, "minor": self.minor,
                           "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid})


@record
class DeviceRule:
    """A devices-cgroup rule; None major/minor means any (`*`)."""
    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeviceRule:
        kind = raw.get("type") or "a"
        if kind not in ("a", "c", "b"):
            raise InvalidArgument(f"config.json: device rule type {kind!r} is not a, c or b")
        access = raw.get("access") or "rwm"
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise InvalidArgument(f"config.json: device rule access {access!r} must be made of r, w, m")
        return cls(bool(raw.get("allow", False)), kind, _opt_int(raw.get("major"), "device rule major"),
                   _opt_int(raw.get("minor"), "device rule minor"), access)

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"allow": self.allow, "type": self.type, "major": self.major, "minor": self.minor,
                           "access": self.access})


@record
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None  # memory+swap, as in cgroup v1's memsw and the OCI spec
    swappiness: int | None = None
    disable_oom_killer: bool = False

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Memory:
        return cls(_opt_int(raw.get("limit"), "memory.limit", minimum=-1),
                   _opt_int(raw.get("reservation"), "memory.reservation", minimum=-1),
                   _opt_int(raw.get("swap"), "memory.swap", minimum=-1),
                   _opt_int(raw.get("swappiness"), "memory.swappiness", minimum=0),
                   bool(raw.get("disableOOMKiller", False)))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"limit": self.limit, "reservation": self.reservation, "swap": self.swap,
                           "swappiness": self.swappiness, "disableOOMKiller": self.disable_oom_killer or None})


@record
class Cpu:
    shares: int | None = None
    quota: int | None = None
    period: int | None = None
    cpus: str | None = None
    mems: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Cpu:
        cpus, mems = raw.get("cpus"), raw.get("mems")
        return cls(_opt_int(raw.get("shares"), "cpu.shares", minimum=0),
                   _opt_int(raw.get("quota"), "cpu.quota", minimum=-1),
                   _opt_int(raw.get("period"), "cpu.period", minimum=0),
                   _str(cpus, "cpu.cpus") if cpus else None, _str(mems, "cpu.mems") if mems else None)

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"shares": self.shares, "quota": self.quota, "period": self.period, "cpus": self.cpus,
                           "mems": self.mems})


@record
class Resources:
    devices: tuple[DeviceRule, ...] = ()
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids_limit: int | None = None
    unified: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Resources:
        mem, cpu, pids = raw.get("memory"), raw.get("cpu"), _obj(raw.get("pids"), "resources.pids")
        unified = _obj(raw.get("unified"), "resources.unified")
        for key in unified:
            if "/" in key or key.startswith("."):
                raise InvalidArgument(f"config.json: resources.unified key {key!r} is not a cgroup file name")
        return cls(tuple(DeviceRule.from_json(_obj(d, "resources.devices[]"))
                         for d in _list(raw.get("devices"), "resources.devices")),
                   Memory.from_json(_obj(mem, "resources.memory")) if mem is not None else None,
                   Cpu.from_json(_obj(cpu, "resources.cpu")) if cpu is not None else None,
                   _opt_int(pids.get("limit"), "pids.limit") if pids else None,
                   {str(k): _str(v, f"resources.unified.{k}") for k, v in unified.items()})

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"devices": [d.to_json() for d in self.devices] or None,
                           "memory": self.memory.to_json() if self.memory else None,
                           "cpu": self.cpu.to_json() if self.cpu else None,
                           "pids": {"limit": self.pids_limit} if self.pids_limit is not None else None,
                           "unified": dict(self.unified) or None})


@record
class SeccompArg:
    index: int
    value: int
    op: str
    value_two: int = 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SeccompArg:
        op = _str(raw.get("op"), "seccomp arg op")
        if op not in SECCOMP_OPS:
            raise InvalidArgument(f"config.json: unknown seccomp operator {op!r}")
        return cls(_int(raw.get("index"), "seccomp arg index", minimum=0), _int(raw.get("value", 0), "seccomp value"),
                   op, _int(raw.get("valueTwo", 0), "seccomp valueTwo"))

    def to_json(self) -> dict[str, Any]:
        out = {"index": self.index, "value": self.value, "op": self.op}
        if self.value_two:
            out["valueTwo"] = self.value_two
        return out


@record
class SeccompRule:
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SeccompRule:
        action = _str(raw.get("action"), "seccomp syscall action")
        if action not in SECCOMP_ACTIONS:
            raise InvalidArgument(f"config.json: unknown seccomp action {action!r}")
        return cls(_strs(raw.get("names"), "seccomp syscall names"), action,
                   _opt_int(raw.get("errnoRet"), "seccomp errnoRet", minimum=0),
                   tuple(SeccompArg.from_json(_obj(a, "seccomp arg")) for a in _list(raw.get("args"), "seccomp args")))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"names": list(self.names), "action": self.action, "errnoRet": self.errno_ret,
                           "args": [a.to_json() for a in self.args] or None})


@record
class Seccomp:
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    syscalls: tuple[SeccompRule, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Seccomp:
        action = _str(raw.get("defaultAction"), "seccomp defaultAction")
        if action not in SECCOMP_ACTIONS:
            raise InvalidArgument(f"config.json: unknown seccomp default action {action!r}")
        return cls(action, _opt_int(raw.get("defaultErrnoRet"), "seccomp defaultErrnoRet", minimum=0),
                   _strs(raw.get("architectures"), "seccomp architectures"), _strs(raw.get("flags"), "seccomp flags"),
                   tuple(SeccompRule.from_json(_obj(s, "seccomp syscall"))
                         for s in _list(raw.get("syscalls"), "seccomp syscalls")))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"defaultAction": self.default_action, "defaultErrnoRet": self.default_errno_ret,
                           "architectures": list(self.architectures) or None, "flags": list(self.flags) or None,
                           "syscalls": [s.to_json() for s in self.syscalls] or None})


@record
class Linux:
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    seccomp: Seccomp | None = None
    sysctl: Mapping[str, str] = field(default_factory=dict)
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Linux:
        namespaces = tuple(Namespace.from_json(_obj(n, "linux.namespaces[]"))
                           for n in _list(raw.get("namespaces"), "linux.namespaces"))
        seen: set[str] = set()
        for ns in namespaces:
            if ns.type in seen:
                raise InvalidArgument(f"config.json: namespace {ns.type!r} is listed twice")
            seen.add(ns.type)
        prop = raw.get("rootfsPropagation") or None
        if prop is not None and prop not in ("shared", "slave", "private", "unbindable", "rshared", "rslave",
                                             "rprivate", "runbindable"):
            raise InvalidArgument(f"config.json: unknown rootfsPropagation {prop!r}")
        res, sec = raw.get("resources"), raw.get("seccomp")
        sysctl = _obj(raw.get("sysctl"), "linux.sysctl")
        for path_list in ("maskedPaths", "readonlyPaths"):
            for p in _strs(raw.get(path_list), f"linux.{path_list}"):
                if not p.startswith("/") or ".." in p.split("/"):
                    raise InvalidArgument(f"config.json: linux.{path_list} entry {p!r} must be absolute, without '..'")
        return cls(
            namespaces=namespaces,
            uid_mappings=tuple(IdMapping.from_json(_obj(m, "uidMappings[]"))
                               for m in _list(raw.get("uidMappings"), "linux.uidMappings")),
            gid_mappings=tuple(IdMapping.from_json(_obj(m, "gidMappings[]"))
                               for m in _list(raw.get("gidMappings"), "linux.gidMappings")),
            devices=tuple(Device.from_json(_obj(d, "linux.devices[]")) for d in _list(raw.get("devices"), "devices")),
            cgroups_path=raw.get("cgroupsPath") or None,
            resources=Resources.from_json(_obj(res, "linux.resources")) if res is not None else None,
            rootfs_propagation=prop,
            seccomp=Seccomp.from_json(_obj(sec, "linux.seccomp")) if sec is not None else None,
            sysctl={str(k): str(v) for k, v in sysctl.items()},
            masked_paths=_strs(raw.get("maskedPaths"), "linux.maskedPaths"),
            readonly_paths=_strs(raw.get("readonlyPaths"), "linux.readonlyPaths"),
        )

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None

    def to_json(self) -> dict[str, Any]:
        return _drop_none({
            "namespaces": [n.to_json() for n in self.namespaces] or None,
            "uidMappings": [m.to_json() for m in self.uid_mappings] or None,
            "gidMappings": [m.to_json() for m in self.gid_mappings] or None,
            "devices": [d.to_json() for d in self.devices] or None,
            "cgroupsPath": self.cgroups_path,
            "resources": self.resources.to_json() if self.resources else None,
            "rootfsPropagation": self.rootfs_propagation,
            "seccomp": self.seccomp.to_json() if self.seccomp else None,
            "sysctl": dict(self.sysctl) or None,
            "maskedPaths": list(self.masked_paths) or None,
            "readonlyPaths": list(self.readonly_paths) or None,
        })


@record
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Hook:
        path = _str(raw.get("path"), "hook path")
        if not path.startswith("/"):
            raise InvalidArgument(f"config.json: hook path {path!r} must be absolute")
        return cls(path, _strs(raw.get("args"), "hook args"), _strs(raw.get("env"), "hook env"),
                   _opt_int(raw.get("timeout"), "hook timeout", minimum=1))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"path": self.path, "args": list(self.args) or None, "env": list(self.env) or None,
                           "timeout": self.timeout})


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@record
class Spec:
    oci_version: str
    root: Root
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] = ()
    linux: Linux = field(default_factory=Linux)
    hooks: Mapping[str, tuple[Hook, ...]] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> Spec:
        top = _obj(raw, "the document")
        version = top.get("ociVersion")
        if not isinstance(version, str) or not version.startswith("1."):
            raise InvalidArgument(f"config.json: ociVersion {version!r} is not a 1.x runtime-spec version")
        if top.get("root") is None:
            raise InvalidArgument("config.json: root is missing")
        proc = top.get("process")
        hooks_raw = _obj(top.get("hooks"), "hooks")
        for kind in hooks_raw:
            if kind not in HOOK_KINDS:
                raise InvalidArgument(f"config.json: unknown hook kind {kind!r}")
        return cls(
            oci_version=version,
            root=Root.from_json(_obj(top["root"], "root")),
            process=Process.from_json(_obj(proc, "process")) if proc is not None else None,
            hostname=top.get("hostname") or None,
            domainname=top.get("domainname") or None,
            mounts=tuple(Mount.from_json(_obj(m, "mounts[]")) for m in _list(top.get("mounts"), "mounts")),
            linux=Linux.from_json(_obj(top.get("linux"), "linux")),
            hooks={k: tuple(Hook.from_json(_obj(h, f"hooks.{k}[]")) for h in _list(v, f"hooks.{k}"))
                   for k, v in hooks_raw.items()},
            annotations={str(k): str(v) for k, v in _obj(top.get("annotations"), "annotations").items()},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ociVersion": self.oci_version, "root": self.root.to_json()}
        if self.process is not None:
            out["process"] = self.process.to_json()
        out |= _drop_none({"hostname": self.hostname, "domainname": self.domainname})
        out["mounts"] = [m.to_json() for m in self.mounts]
        out["linux"] = self.linux.to_json()
        if self.hooks:
            out["hooks"] = {k: [h.to_json() for h in v] for k, v in self.hooks.items()}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out
