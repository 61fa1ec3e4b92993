"""Docker's stats JSON (`GET /containers/{id}/stats`) from berth.engine.stats samples.

Field names and omissions follow moby's api/types StatsJSON: cgroup v1 fills percpu_usage and max_usage, v2 does
not; fields tagged omitempty there are left out here when zero.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from berth.engine.stats import BlkioEntry, Sample

ZERO_TIME = "0001-01-01T00:00:00Z"


def go_time(ns: int) -> str:
    """A time as Go's RFC3339Nano marshals it: UTC, fraction with trailing zeros trimmed."""
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def _blkio(entries: tuple[BlkioEntry, ...]) -> list[dict[str, Any]] | None:
    if not entries:
        return None
    return [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in entries]


def _cpu(s: Sample | None) -> dict[str, Any]:
    if s is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    c = s.cgroup.cpu
    usage: dict[str, Any] = {"total_usage": c.total}
    if c.percpu:
        usage["percpu_usage"] = list(c.percpu)
    usage["usage_in_kernelmode"] = c.kernel
    usage["usage_in_usermode"] = c.user
    out: dict[str, Any] = {"cpu_usage": usage}
    if s.system_cpu:
        out["system_cpu_usage"] = s.system_cpu
    if s.online_cpus:
        out["online_cpus"] = s.online_cpus
    out["throttling_data"] = {"periods": c.periods, "throttled_periods": c.throttled_periods,
                              "throttled_time": c.throttled_time}
    return out


def _memory(s: Sample) -> dict[str, Any]:
    m = s.cgroup.memory
    out: dict[str, Any] = {}
    if m.usage:
        out["usage"] = m.usage
    if m.max_usage:
        out["max_usage"] = m.max_usage
    if m.stats:
        out["stats"] = dict(m.stats)
    if m.failcnt:
        out["failcnt"] = m.failcnt
    limit = m.limit if m.limit is not None and m.limit <= s.host_memory else s.host_memory
    if limit:
        out["limit"] = limit
    return out


def stats_json(name: str, container_id: str, now: Sample | None, pre: Sample | None) -> dict[str, Any]:
    """One stats object; now None is the empty one Docker sends for a container that is not running."""
    pids: dict[str, Any] = {}
    blkio: dict[str, Any] = {k: None for k in (
        "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive", "io_service_time_recursive",
        "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive")}
    out: dict[str, Any] = {
        "read": go_time(now.read_ns) if now else ZERO_TIME,
        "preread": go_time(pre.read_ns) if pre else ZERO_TIME,
        "pids_stats": pids, "blkio_stats": blkio, "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(now), "precpu_stats": _cpu(pre), "memory_stats": _memory(now) if now else {},
        "name": "/" + name, "id": container_id,
    }
    if now is None:
        return out
    cg = now.cgroup
    if cg.pids_current:
        pids["current"] = cg.pids_current
    if cg.pids_limit:
        pids["limit"] = cg.pids_limit
    blkio["io_service_bytes_recursive"] = _blkio(cg.io_bytes)
    blkio["io_serviced_recursive"] = _blkio(cg.io_ops)
    if cg.version == 1:       # moby fills the rest only from v1 files berth does not read: empty lists there
        for key in ("io_queue_recursive", "io_service_time_recursive", "io_wait_time_recursive",
                    "io_merged_recursive", "io_time_recursive", "sectors_recursive"):
            blkio[key] = []
        for key in ("io_service_bytes_recursive", "io_serviced_recursive"):
            blkio[key] = blkio[key] or []
    if now.networks:
        out["networks"] = {name: {"rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets, "rx_errors": n.rx_errors,
                                  "rx_dropped": n.rx_dropped, "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                                  "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped}
                           for name, n in sorted(now.networks.items())}
    return out
