"""A running container's resource usage (`docker stats`), read from its cgroup (v1 or v2), its network namespace
and the host's /proc.

The readers are pure functions over a directory tree: `read_v1({controller: dir})` and `read_v2(dir)` read only
the files a kernel puts in a cgroup directory (v1: cpuacct.usage, memory.stat...; v2: cpu.stat, memory.current,
memory.stat, io.stat, pids.current...), so each is testable against a fake tree with real file formats. `sample`
puts them together with the host's CPU counters and the container's interfaces, at one point in time.
May import: berth.runtime, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from berth.errors import NotFound
from berth.runtime.cgroups import CgroupV1, CgroupV2, host_hierarchies, own_cgroups

NS_PER_TICK = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
_NO_LIMIT_V1 = 1 << 62          # v1 reports "no limit" as a page-rounded 2^63-1: anything this big is none


@dataclass(frozen=True, slots=True)
class CpuUsage:
    total: int = 0                          # ns
    percpu: tuple[int, ...] | None = None   # ns per cpu (cgroup v1 only)
    kernel: int = 0                         # ns
    user: int = 0                           # ns
    periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0                 # ns


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    usage: int = 0
    max_usage: int | None = None           # v1 only
    limit: int | None = None               # None: unlimited (the API then shows the host's memory)
    failcnt: int = 0
    stats: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BlkioEntry:
    major: int
    minor: int
    op: str
    value: int


@dataclass(frozen=True, slots=True)
class NetDev:
    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass(frozen=True, slots=True)
class CgroupUsage:
    """What one cgroup directory tree says."""
    version: int
    cpu: CpuUsage = field(default_factory=CpuUsage)
    memory: MemoryUsage = field(default_factory=MemoryUsage)
    pids_current: int = 0
    pids_limit: int | None = None
    io_bytes: tuple[BlkioEntry, ...] = ()
    io_ops: tuple[BlkioEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a container, as `docker stats` shows it."""
    read_ns: int                            # wall clock, ns since the epoch
    cgroup: CgroupUsage
    system_cpu: int                         # the host's total CPU time, ns (/proc/stat)
    online_cpus: int
    host_memory: int
    networks: Mapping[str, NetDev] = field(default_factory=dict)


# -- parsers of the kernel's file formats -------------------------------------------------------------


def _text(directory: str, name: str) -> str | None:
    try:
        with open(os.path.join(directory, name), "rb") as f:
            return f.read().decode()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return None      # e.g. ENODEV/EOPNOTSUPP for a file a kernel lists but cannot read


def _int(directory: str, name: str) -> int | None:
    text = _text(directory, name)
    if text is None:
        return None
    value = text.strip()
    if value == "max":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_flat_keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.events...)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def parse_v1_blkio(text: str | None) -> tuple[BlkioEntry, ...]:
    """blkio.*_recursive: `8:0 Read 4096` lines and a `Total N` line (Docker keeps every device line)."""
    out = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        try:
            out.append(BlkioEntry(int(major), int(minor), fields[1], int(fields[2])))
        except ValueError:
            continue
    return tuple(out)


def parse_v2_io_stat(text: str | None) -> tuple[tuple[BlkioEntry, ...], tuple[BlkioEntry, ...]]:
    """io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` -> (bytes, ops), ops named as Docker's
    cgroup v2 stats name them ("read", "write")."""
    nbytes: list[BlkioEntry] = []
    ops: list[BlkioEntry] = []
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major_text, _, minor_text = fields[0].partition(":")
        try:
            major, minor = int(major_text), int(minor_text)
        except ValueError:
            continue
        values = dict(f.partition("=")[::2] for f in fields[1:])
        for key, sink, op in (("rbytes", nbytes, "read"), ("wbytes", nbytes, "write"),
                              ("rios", ops, "read"), ("wios", ops, "write")):
            if key in values and values[key].isdigit():
                sink.append(BlkioEntry(major, minor, op, int(values[key])))
    return tuple(nbytes), tuple(ops)


def parse_net_dev(text: str) -> dict[str, NetDev]:
    """/proc/<pid>/net/dev, loopback left out as Docker does."""
    out: dict[str, NetDev] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if not sep or name == "lo" or len(fields) < 12:
            continue
        v = [int(x) for x in fields]
        out[name] = NetDev(v[0], v[1], v[2], v[3], v[8], v[9], v[10], v[11])
    return out


def parse_system_cpu(proc_stat: str) -> int:
    """The host's CPU time in ns, as Docker counts it: the first seven fields of the `cpu` line of /proc/stat."""
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return sum(int(x) for x in fields[1:8]) * NS_PER_TICK
    return 0


# -- the readers ----------------------------------------------------------------------------------------


def read_v1(dirs: Mapping[str, str]) -> CgroupUsage:
    """A cgroup v1 container: dirs maps each controller (cpuacct, cpu, memory, pids, blkio) to its directory."""
    cpuacct, cpu = dirs.get("cpuacct", ""), dirs.get("cpu", "")
    acct = parse_flat_keyed(_text(cpuacct, "cpuacct.stat")) if cpuacct else {}
    percpu_text = _text(cpuacct, "cpuacct.usage_percpu") if cpuacct else None
    throttle = parse_flat_keyed(_text(cpu, "cpu.stat")) if cpu else {}
    cpu_usage = CpuUsage(
        total=(_int(cpuacct, "cpuacct.usage") or 0) if cpuacct else 0,
        percpu=tuple(int(x) for x in percpu_text.split()) if percpu_text else None,
        kernel=acct.get("system", 0) * NS_PER_TICK, user=acct.get("user", 0) * NS_PER_TICK,
        periods=throttle.get("nr_periods", 0), throttled_periods=throttle.get("nr_throttled", 0),
        throttled_time=throttle.get("throttled_time", 0))
    memory = MemoryUsage()
    mem = dirs.get("memory")
    if mem:
        limit = _int(mem, "memory.limit_in_bytes")
        memory = MemoryUsage(usage=_int(mem, "memory.usage_in_bytes") or 0,
                             max_usage=_int(mem, "memory.max_usage_in_bytes") or 0,
                             limit=None if limit is None or limit >= _NO_LIMIT_V1 else limit,
                             failcnt=_int(mem, "memory.failcnt") or 0,
                             stats=parse_flat_keyed(_text(mem, "memory.stat")))
    pids = dirs.get("pids")
    blkio = dirs.get("blkio")
    io_bytes: tuple[BlkioEntry, ...] = ()
    io_ops: tuple[BlkioEntry, ...] = ()
    if blkio:
        # Like runc: the CFQ/BFQ files when the scheduler fills them, else the throttle layer's
        io_bytes = parse_v1_blkio(_text(blkio, "blkio.io_service_bytes_recursive"))
        io_ops = parse_v1_blkio(_text(blkio, "blkio.io_serviced_recursive"))
        if not io_bytes:
            io_bytes = parse_v1_blkio(_text(blkio, "blkio.throttle.io_service_bytes_recursive"))
            io_ops = parse_v1_blkio(_text(blkio, "blkio.throttle.io_serviced_recursive"))
    return CgroupUsage(1, cpu_usage, memory, (_int(pids, "pids.current") or 0) if pids else 0,
                       _int(pids, "pids.max") if pids else None, io_bytes, io_ops)


def read_v2(directory: str) -> CgroupUsage:
    """A cgroup v2 container's directory (cpu.stat, memory.current, memory.max, memory.stat, memory.events,
    pids.current, pids.max, io.stat)."""
    cpu = parse_flat_keyed(_text(directory, "cpu.stat"))
    cpu_usage = CpuUsage(total=cpu.get("usage_usec", 0) * 1000, kernel=cpu.get("system_usec", 0) * 1000,
                         user=cpu.get("user_usec", 0) * 1000, periods=cpu.get("nr_periods", 0),
                         throttled_periods=cpu.get("nr_throttled", 0),
                         throttled_time=cpu.get("throttled_usec", 0) * 1000)
    events = parse_flat_keyed(_text(directory, "memory.events"))
    memory = MemoryUsage(usage=_int(directory, "memory.current") or 0, max_usage=None,
                         limit=_int(directory, "memory.max"), failcnt=events.get("max", 0),
                         stats=parse_flat_keyed(_text(directory, "memory.stat")))
    io_bytes, io_ops = parse_v2_io_stat(_text(directory, "io.stat"))
    return CgroupUsage(2, cpu_usage, memory, _int(directory, "pids.current") or 0, _int(directory, "pids.max"),
                       io_bytes, io_ops)


def cgroup_of(pid: int) -> CgroupV1 | CgroupV2:
    """The cgroup a container's init lives in, from /proc/<pid>/cgroup: right whichever runtime (built-in, runc,
    crun) placed it. NotFound when the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            paths = own_cgroups(f.read())
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise NotFound(f"process {pid} is gone") from exc
    version, found = host_hierarchies()
    if version == 2:
        return CgroupV2(found[""], paths.get("", "/").strip("/"))
    return CgroupV1({c: (mp, paths[c].strip("/")) for c, mp in found.items() if c in paths})


def read_cgroup(cgroup: CgroupV1 | CgroupV2) -> CgroupUsage:
    if isinstance(cgroup, CgroupV2):
        return read_v2(cgroup.dir)
    return read_v1({c: cgroup.dir(c) for c in cgroup.places})


# -- the host -----------------------------------------------------------------------------------------


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def online_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def networks_of(pid: int) -> dict[str, NetDev]:
    """The interfaces of the network namespace pid lives in (its /proc/<pid>/net/dev), loopback left out."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            return parse_net_dev(f.read())
    except OSError:
        return {}


def sample(cgroup: CgroupV1 | CgroupV2, pid: int, clock_ns: int | None = None) -> Sample:
    """One reading: the cgroup, the host's CPU counters right after it, the container's interfaces."""
    usage = read_cgroup(cgroup)
    with open("/proc/stat") as f:
        system = parse_system_cpu(f.read())
    read_ns = time.time_ns() if clock_ns is None else clock_ns
    cpus = len(usage.cpu.percpu) if usage.cpu.percpu else online_cpus()
    return Sample(read_ns, usage, system, cpus, host_memory(), networks_of(pid) if pid > 0 else {})


def with_limit_clamped(s: Sample) -> Sample:
    """Docker shows the host's memory as the limit of a container without one (or with a larger one)."""
    limit = s.cgroup.memory.limit
    if limit is None or limit > s.host_memory:
        return replace(s, cgroup=replace(s.cgroup, memory=replace(s.cgroup.memory, limit=s.host_memory)))
    return s
