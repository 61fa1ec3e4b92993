"""Cgroups v1 and v2 behind one small interface, with pure planners for what each writes.

`v1_plan(resources)` and `v2_plan(resources)` return the files to write (testable without root); `open_cgroup`
picks the hierarchy this host runs and returns a `Cgroup`. Paths follow runc: an absolute cgroupsPath is taken
relative to each hierarchy's root; "slice:prefix:name" (systemd style) becomes slice/prefix-name.scope.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from berth.errors import InvalidArgument, RuntimeFailure
from berth.oci.spec import DeviceRule, Resources

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start


CGROUP_ROOT = "/sys/fs/cgroup"

# runc appends these rules to every container's device rules (libcontainer/specconv AllowedDevices), so that a
# container always has its basic nodes and may mknod (but not open) any device.
RUNC_ALLOWED_DEVICES = (
    DeviceRule(True, "c", None, None, "m"), DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(True, "c", 1, 8, "rwm"), DeviceRule(True, "c", 1, 7, "rwm"),
    DeviceRule(True, "c", 5, 0, "rwm"), DeviceRule(True, "c", 1, 5, "rwm"), DeviceRule(True, "c", 1, 9, "rwm"),
    DeviceRule(True, "c", 136, None, "rwm"), DeviceRule(True, "c", 5, 2, "rwm"), DeviceRule(True, "c", 10, 200, "rwm"),
)


if TYPE_CHECKING:
    from typing import Protocol

    class Cgroup(Protocol):
        """One container's cgroup, on whatever hierarchy the host runs."""
        version: int

        def create(self, resources: Resources | None) -> None: ...
        def add(self, pid: int) -> None: ...
        def pids(self) -> list[int]: ...
        def set_frozen(self, frozen: bool) -> None: ...
        def is_frozen(self) -> bool: ...
        def oom_kills(self) -> int: ...
        def destroy(self) -> None: ...


def normalize_path(cgroups_path: str | None, container_id: str) -> tuple[bool, str]:
    """(absolute, path without leading slash). Like runc, an absolute cgroupsPath is taken from each hierarchy's
    root, and a relative (or missing: the container id) one from the runtime's own cgroup in that hierarchy."""
    if not cgroups_path:
        return False, container_id
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise InvalidArgument(f"cgroupsPath {cgroups_path!r}: expected slice:prefix:name")
        slice_, prefix, name = parts
        return True, f"{slice_ or 'system.slice'}/{prefix}-{name}.scope"
    rel = cgroups_path.strip("/")
    if not rel or any(p in ("..", ".") for p in rel.split("/")):
        raise InvalidArgument(f"cgroupsPath {cgroups_path!r} is not a valid cgroup path")
    return cgroups_path.startswith("/"), rel


def _rule_v1(rule: DeviceRule) -> str:
    if rule.type == "a":
        return "a"
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


def v1_plan(resources: Resources | None, extra_devices: Iterable[DeviceRule] = RUNC_ALLOWED_DEVICES
            ) -> dict[str, list[tuple[str, str]]]:
    """controller -> [(file, value)] in the order they must be written."""
    res = resources or Resources()
    plan: dict[str, list[tuple[str, str]]] = {}
    if res.memory:
        m, out = res.memory, []
        if m.limit is not None and m.limit != 0:
            out.append(("memory.limit_in_bytes", str(m.limit)))
        if m.swap is not None and m.swap != 0:
            out.append(("memory.memsw.limit_in_bytes", str(m.swap)))
        if m.reservation is not None and m.reservation != 0:
            out.append(("memory.soft_limit_in_bytes", str(m.reservation)))
        if m.swappiness is not None:
            out.append(("memory.swappiness", str(m.swappiness)))
        if m.disable_oom_killer:
            out.append(("memory.oom_control", "1"))
        plan["memory"] = out
    if res.cpu:
        c, out, cs = res.cpu, [], []
        if c.shares:
            out.append(("cpu.shares", str(c.shares)))
        if c.period:
            out.append(("cpu.cfs_period_us", str(c.period)))
        if c.quota is not None and c.quota != 0:
            out.append(("cpu.cfs_quota_us", str(c.quota)))
        plan["cpu"] = out
        if c.cpus:
            cs.append(("cpuset.cpus", c.cpus))
        if c.mems:
            cs.append(("cpuset.mems", c.mems))
        plan["cpuset"] = cs
    if res.pids_limit is not None and res.pids_limit != 0:
        plan["pids"] = [("pids.max", "max" if res.pids_limit < 0 else str(res.pids_limit))]
    dev: list[tuple[str, str]] = []
    for rule in (*res.devices, *extra_devices):
        dev.append(("devices.allow" if rule.allow else "devices.deny", _rule_v1(rule)))
    plan["devices"] = dev
    return plan


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] to v2 cpu.weight [1, 10000], the conversion runc and crun use."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def v2_plan(resources: Resources | None) -> list[tuple[str, str]]:
    """[(file, value)] for the container's cgroup2 directory."""
    res = resources or Resources()
    out: list[tuple[str, str]] = []
    if res.memory:
        m = res.memory
        if m.reservation is not None and m.reservation != 0:
            out.append(("memory.low", "max" if m.reservation < 0 else str(m.reservation)))
        if m.limit is not None and m.limit != 0:
            out.append(("memory.max", "max" if m.limit < 0 else str(m.limit)))
        if m.swap is not None and m.swap != 0:
            if m.swap < 0:
                out.append(("memory.swap.max", "max"))
            else:
                if m.limit is None or m.limit <= 0:
                    raise InvalidArgument("memory.swap needs memory.limit on cgroup v2 (swap is memory+swap)")
                if m.swap < m.limit:
                    raise InvalidArgument(f"memory.swap {m.swap} is smaller than memory.limit {m.limit}")
                out.append(("memory.swap.max", str(m.swap - m.limit)))
        if m.disable_oom_killer:
            out.append(("memory.oom.group", "0"))
    if res.cpu:
        c = res.cpu
        if c.shares:
            out.append(("cpu.weight", str(shares_to_weight(c.shares))))
        if (c.quota is not None and c.quota != 0) or c.period:
            quota = "max" if c.quota is None or c.quota <= 0 else str(c.quota)
            out.append(("cpu.max", f"{quota} {c.period or 100000}"))
        if c.cpus:
            out.append(("cpuset.cpus", c.cpus))
        if c.mems:
            out.append(("cpuset.mems", c.mems))
    if res.pids_limit is not None and res.pids_limit != 0:
        out.append(("pids.max", "max" if res.pids_limit < 0 else str(res.pids_limit)))
    out.extend(sorted(res.unified.items()))
    return out


def v2_controllers(plan: list[tuple[str, str]]) -> list[str]:
    return sorted({name.split(".", 1)[0] for name, _ in plan} - {"cgroup"})


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"cgroup: cannot open {path}: {exc.strerror}") from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise RuntimeFailure(f"cgroup: writing {value!r} to {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode()


def _rmdir_waiting(path: str) -> None:
    # rmdir fails with EBUSY while the last processes are being reaped: retry briefly
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != 16:
                raise RuntimeFailure(f"cgroup: cannot remove {path}: {exc.strerror}") from exc
            time.sleep(0.01)
    raise RuntimeFailure(f"cgroup {path} still busy after 2 s")


class CgroupV1:
    version = 1

    def __init__(self, places: dict[str, tuple[str, str]]) -> None:
        """places: controller name -> (mount point of its hierarchy, cgroup path relative to it)."""
        self.places = places
        self.hierarchies = {c: mp for c, (mp, _) in places.items()}
        self._made: list[str] = []

    def dir(self, controller: str) -> str:
        mount_point, rel = self.places[controller]
        return os.path.join(mount_point, rel)

    def dirs(self) -> list[str]:
        return sorted({self.dir(c) for c in self.places})

    def to_record(self) -> dict[str, object]:
        return {"version": 1, "places": {c: list(v) for c, v in self.places.items()}}

    def create(self, resources: Resources | None) -> None:
        plan = v1_plan(resources)
        try:
            for mount_point, rel in sorted(set(self.places.values())):
                self._mkdirs(mount_point, rel)
            for controller, files in plan.items():
                if controller not in self.hierarchies:
                    if files and controller != "devices":
                        raise RuntimeFailure(f"cgroup v1 controller {controller} is not mounted on this host")
                    continue
                for name, value in files:
                    _write(os.path.join(self.dir(controller), name), value)
        except BaseException:
            self._undo()
            raise

    def _mkdirs(self, mount_point: str, rel: str) -> None:
        current = mount_point
        for part in rel.split("/"):
            parent, current = current, os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                continue
            self._made.append(current)
            if os.path.exists(os.path.join(current, "cpuset.cpus")):
                # a new v1 cpuset starts empty and refuses tasks: inherit the parent's cpus and mems
                for name in ("cpuset.cpus", "cpuset.mems"):
                    _write(os.path.join(current, name), _read(os.path.join(parent, name)).strip() or "\n")

    def add(self, pid: int) -> None:
        for d in self.dirs():
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        d = self.dir("pids") if "pids" in self.hierarchies else self.dirs()[0]
        try:
            return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def set_frozen(self, frozen: bool) -> None:
        if "freezer" not in self.hierarchies:
            raise RuntimeFailure("the freezer cgroup controller is not mounted: cannot pause")
        state = os.path.join(self.dir("freezer"), "freezer.state")
        _write(state, "FROZEN" if frozen else "THAWED")
        for _ in range(500):
            now = _read(state).strip()
            if now == ("FROZEN" if frozen else "THAWED"):
                return
            time.sleep(0.002)
            _write(state, "FROZEN" if frozen else "THAWED")
        raise RuntimeFailure(f"cgroup did not become {'frozen' if frozen else 'thawed'} in time")

    def is_frozen(self) -> bool:
        if "freezer" not in self.hierarchies:
            return False
        try:
            return _read(os.path.join(self.dir("freezer"), "freezer.state")).strip() == "FROZEN"
        except FileNotFoundError:
            return False

    def oom_kills(self) -> int:
        if "memory" not in self.hierarchies:
            return 0
        try:
            text = _read(os.path.join(self.dir("memory"), "memory.oom_control"))
        except FileNotFoundError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def _undo(self) -> None:
        """Remove only the directories create() made (a failed create must not touch pre-existing ones)."""
        for d in sorted(self._made, key=len, reverse=True):
            _rmdir_waiting(d)
        self._made = []

    def destroy(self) -> None:
        targets = set(self._made) or {self.dir(c) for c in self.places}
        for d in sorted(targets, key=len, reverse=True):
            _rmdir_waiting(d)


class CgroupV2:
    version = 2

    def __init__(self, mount_point: str, path: str) -> None:
        self.mount_point = mount_point
        self.path = path
        self._made: list[str] = []

    @property
    def dir(self) -> str:
        return os.path.join(self.mount_point, self.path)

    def to_record(self) -> dict[str, object]:
        return {"version": 2, "mount_point": self.mount_point, "path": self.path}

    def create(self, resources: Resources | None) -> None:
        plan = v2_plan(resources)
        wanted = v2_controllers(plan)
        try:
            current = self.mount_point
            for part in self.path.split("/"):
                if wanted:
                    self._enable(current, wanted)
                current = os.path.join(current, part)
                try:
                    os.mkdir(current, 0o755)
                    self._made.append(current)
                except FileExistsError:
                    pass
            for name, value in plan:
                _write(os.path.join(self.dir, name), value)
            if resources is not None and resources.devices:
                # like v1, where a new cgroup inherits its parent's (open) list: no rules, no filter
                from berth.runtime import devicefilter

                devicefilter.attach(self.dir, devicefilter.compile_rules((*resources.devices,
                                                                          *RUNC_ALLOWED_DEVICES)))
        except BaseException:
            self._undo()
            raise

    @staticmethod
    def _enable(parent: str, wanted: list[str]) -> None:
        available = set(_read(os.path.join(parent, "cgroup.controllers")).split())
        missing = [c for c in wanted if c not in available]
        if missing:
            raise RuntimeFailure(f"cgroup v2 controllers {', '.join(missing)} are not available in {parent}")
        enabled = set(_read(os.path.join(parent, "cgroup.subtree_control")).split())
        todo = [c for c in wanted if c not in enabled]
        if todo:
            _write(os.path.join(parent, "cgroup.subtree_control"), " ".join("+" + c for c in todo))

    def add(self, pid: int) -> None:
        _write(os.path.join(self.dir, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in _read(os.path.join(self.dir, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def set_frozen(self, frozen: bool) -> None:
        _write(os.path.join(self.dir, "cgroup.freeze"), "1" if frozen else "0")
        for _ in range(500):
            if self.is_frozen() == frozen:
                return
            time.sleep(0.002)
        raise RuntimeFailure(f"cgroup did not become {'frozen' if frozen else 'thawed'} in time")

    def is_frozen(self) -> bool:
        try:
            text = _read(os.path.join(self.dir, "cgroup.events"))
        except FileNotFoundError:
            return False
        return "frozen 1" in text.splitlines()

    def oom_kills(self) -> int:
        try:
            text = _read(os.path.join(self.dir, "memory.events"))
        except FileNotFoundError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def _undo(self) -> None:
        for d in sorted(self._made, key=len, reverse=True):
            _rmdir_waiting(d)
        self._made = []

    def destroy(self) -> None:
        targets = self._made or [self.dir]
        for d in sorted(targets, key=len, reverse=True):
            _rmdir_waiting(d)


def host_hierarchies(mountinfo: str | None = None) -> tuple[int, dict[str, str]]:
    """(version, {controller: mount point}) of this host. v1 also lists named hierarchies (name=systemd)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", "rb") as f:
            mountinfo = f.read().decode()
    v1: dict[str, str] = {}
    v2_root = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        sep = fields.index("-")
        mount_point, fstype, super_opts = fields[4], fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2" and mount_point == CGROUP_ROOT:
            v2_root = mount_point
        elif fstype == "cgroup":
            for opt in super_opts.split(","):
                if opt in ("rw", "ro") or opt.startswith(("release_agent=", "clone_children", "xattr")):
                    continue
                v1[opt] = mount_point
    if v2_root:
        return 2, {"": v2_root}
    return 1, v1


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """controller -> this process's cgroup path, from /proc/self/cgroup ("" is the v2 entry)."""
    if text is None:
        with open("/proc/self/cgroup", "rb") as f:
            text = f.read().decode()
    out: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def open_cgroup(cgroups_path: str | None, container_id: str, *, mountinfo: str | None = None,
                own: str | None = None) -> CgroupV1 | CgroupV2:
    absolute, path = normalize_path(cgroups_path, container_id)
    version, found = host_hierarchies(mountinfo)
    mine = {} if absolute else own_cgroups(own)

    def rel(controller: str) -> str:
        return os.path.join(mine.get(controller, "/").strip("/"), path) if not absolute else path

    if version == 2:
        return CgroupV2(found[""], rel(""))
    if not found:
        raise RuntimeFailure("no cgroup hierarchy is mounted under /sys/fs/cgroup")
    return CgroupV1({c: (mp, rel(c)) for c, mp in found.items()})


def from_record(record: dict[str, object]) -> CgroupV1 | CgroupV2:
    if record.get("version") == 2:
        return CgroupV2(str(record["mount_point"]), str(record["path"]))
    places = record["places"]
    assert isinstance(places, dict)
    return CgroupV1({str(c): (str(v[0]), str(v[1])) for c, v in places.items()})
