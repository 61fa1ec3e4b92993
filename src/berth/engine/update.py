"""`docker update`: change a container's resource limits and restart policy, live in its cgroup when it runs,
and in its record for the next start.

`plan_update` is pure (Docker's checks and merge, moby's daemon/update.go and container.UpdateContainer):
it takes the record's configuration and the request and returns the new configuration. `cgroup_writes` turns
the new configuration into the files to write (cgroup v1 or v2), and `update` applies both under the lifecycle
lock so that a start cannot slip in between.
May import: berth.engine, berth.runtime, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from berth.engine.containers import Container, ContainerConfig, RestartPolicy, Status
from berth.engine.lifecycle import ContainerService
from berth.engine.specgen import resources_json
from berth.engine.stats import cgroup_of
from berth.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from berth.oci.spec import Resources
from berth.runtime.cgroups import CgroupV1, CgroupV2, v1_plan, v2_controllers, v2_plan

_RESTART = ("no", "always", "unless-stopped", "on-failure")
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """The fields of an update body; 0 (and None) mean "leave as it is", as in Docker."""
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    restart_policy: RestartPolicy | None = None


def _num(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"invalid {key}: {value!r} is not an integer")
    return value


def parse_update(body: Mapping[str, Any]) -> UpdateRequest:
    """The JSON body of POST /containers/{id}/update (HostConfig's resource fields and RestartPolicy)."""
    policy = body.get("RestartPolicy")
    restart = None
    if isinstance(policy, Mapping) and policy.get("Name"):
        name = str(policy["Name"])
        retries = _num(policy, "MaximumRetryCount")
        if name not in _RESTART:
            raise InvalidArgument(f"invalid restart policy '{name}'")
        if retries and name != "on-failure":
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
        if retries < 0:
            raise InvalidArgument("maximum retry count cannot be negative")
        restart = RestartPolicy(name, retries)
    pids = body.get("PidsLimit")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int)):
        raise InvalidArgument(f"invalid PidsLimit: {pids!r} is not an integer")
    return UpdateRequest(memory=_num(body, "Memory"), memory_swap=_num(body, "MemorySwap"),
                         memory_reservation=_num(body, "MemoryReservation"), nano_cpus=_num(body, "NanoCpus"),
                         cpu_shares=_num(body, "CpuShares"), cpu_period=_num(body, "CpuPeriod"),
                         cpu_quota=_num(body, "CpuQuota"), cpuset_cpus=str(body.get("CpusetCpus") or ""),
                         cpuset_mems=str(body.get("CpusetMems") or ""), pids_limit=pids, restart_policy=restart)


def _cpus(spec: str) -> set[int]:
    out: set[int] = set()
    for item in spec.split(","):
        lo, _, hi = item.partition("-")
        if int(hi or lo) < int(lo):
            raise ValueError(item)
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def check_request(r: UpdateRequest, ncpu: int, available_cpus: set[int]) -> None:
    """Docker's verifyPlatformContainerResources for an update: each value on its own."""
    if r.memory < 0 and r.memory != -1 or r.memory_swap < -1 or r.memory_reservation < 0:
        raise InvalidArgument("invalid memory value: it must not be negative")
    if r.memory and 0 < r.memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if r.memory > 0 and r.memory_swap > 0 and r.memory_swap < r.memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if r.nano_cpus and r.cpu_period:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if r.nano_cpus and r.cpu_quota:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if r.nano_cpus < 0 or r.nano_cpus > ncpu * 10**9:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if r.cpu_shares < 0:
        raise InvalidArgument(f"invalid CPU shares {r.cpu_shares}: it must not be negative")
    if r.cpu_period and not 1000 <= r.cpu_period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if r.cpu_quota > 0 and r.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for label, spec in (("cpus", r.cpuset_cpus), ("mems", r.cpuset_mems)):
        if spec and not _CPUSET.match(spec):
            raise InvalidArgument(f"Invalid value {spec} for cpuset {label}")
    if r.cpuset_cpus:
        try:
            wanted = _cpus(r.cpuset_cpus)
        except ValueError:
            raise InvalidArgument(f"Invalid value {r.cpuset_cpus} for cpuset cpus") from None
        if not wanted <= available_cpus:
            have = ",".join(str(n) for n in sorted(available_cpus))
            raise InvalidArgument(f"Requested CPUs are not available - requested {r.cpuset_cpus}, available: {have}")


def plan_update(c: Container, r: UpdateRequest) -> ContainerConfig:
    """The container's configuration after the update, or Docker's error for a conflicting one."""
    cfg = c.config

    def cannot(why: str) -> str:
        return f"Cannot update container {c.id}: {why}"

    if c.state.status in (Status.REMOVING, Status.DEAD):
        raise Conflict(cannot('container is marked for removal and cannot be "update"'))
    if r.restart_policy is not None and cfg.auto_remove and r.restart_policy.name != "no":
        raise InvalidArgument(cannot("Restart policy cannot be updated because AutoRemove is enabled for the "
                                     "container"))
    if r.nano_cpus > 0 and cfg.cpu_period > 0:
        raise Conflict(cannot("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"))
    if r.nano_cpus > 0 and cfg.cpu_quota > 0:
        raise Conflict(cannot("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"))
    if r.cpu_period > 0 and cfg.nano_cpus > 0:
        raise Conflict(cannot("Conflicting options: NanoCPUs cannot be updated as CPU Period has already been set"))
    if r.cpu_quota > 0 and cfg.nano_cpus > 0:
        raise Conflict(cannot("Conflicting options: NanoCPUs cannot be updated as CPU Quota has already been set"))
    # Docker records a --memory without --memory-swap as swap = 2 x memory; berth keeps 0 for "the default"
    swap = cfg.memory_swap if cfg.memory_swap or not cfg.memory else 2 * cfg.memory
    memory = cfg.memory
    if r.memory:
        # as dockerd does, even when the current swap is unlimited (-1) or unset (0)
        if r.memory > swap and r.memory_swap == 0:
            raise Conflict(cannot("Memory limit should be smaller than already set memoryswap limit, update the "
                                  "memoryswap at the same time"))
        memory = r.memory
    if r.memory_swap:
        swap = r.memory_swap
    new = replace(cfg, memory=memory, memory_swap=swap if r.memory or r.memory_swap else cfg.memory_swap,
                  memory_reservation=r.memory_reservation or cfg.memory_reservation,
                  nano_cpus=r.nano_cpus or cfg.nano_cpus, cpu_shares=r.cpu_shares or cfg.cpu_shares,
                  cpu_period=r.cpu_period or cfg.cpu_period, cpu_quota=r.cpu_quota or cfg.cpu_quota,
                  cpuset_cpus=r.cpuset_cpus or cfg.cpuset_cpus, cpuset_mems=r.cpuset_mems or cfg.cpuset_mems,
                  restart_policy=r.restart_policy or cfg.restart_policy)
    if r.pids_limit is not None:
        new = replace(new, pids_limit=r.pids_limit if r.pids_limit > 0 else 0)
    return new


def _resources(cfg: ContainerConfig, r: UpdateRequest) -> Resources:
    raw = resources_json(cfg)
    raw.pop("devices", None)
    if r.pids_limit is not None and r.pids_limit <= 0:
        raw["pids"] = {"limit": -1}                  # "max": an update may lift the limit
    return Resources.from_json(raw)


def _read(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def cgroup_writes(cgroup: CgroupV1 | CgroupV2, cfg: ContainerConfig, r: UpdateRequest) -> list[tuple[str, str]]:
    """(path, value) to write, in order, for the fields the request changes."""
    res = _resources(cfg, r)
    if isinstance(cgroup, CgroupV2):
        plan = [(name, value) for name, value in v2_plan(res) if _wanted(name, r)]
        return [*_v2_enable(cgroup, v2_controllers(plan)),
                *((os.path.join(cgroup.dir, name), value) for name, value in plan)]
    out: list[tuple[str, str]] = []
    for controller, files in v1_plan(res, extra_devices=()).items():
        if controller == "devices" or controller not in cgroup.places:
            continue
        chosen = [(os.path.join(cgroup.dir(controller), n), v) for n, v in files if _wanted(n, r)]
        if controller == "memory":
            # memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raise the pair from the top
            limit = next((int(v) for n, v in chosen if n.endswith("memory.limit_in_bytes")), None)
            current_swap = _read(os.path.join(cgroup.dir("memory"), "memory.memsw.limit_in_bytes"))
            if limit is not None and current_swap is not None and limit > current_swap:
                chosen.sort(key=lambda item: not item[0].endswith("memsw.limit_in_bytes"))
        out.extend(chosen)
    return out


def _v2_enable(cgroup: CgroupV2, controllers: list[str]) -> list[tuple[str, str]]:
    """A limit first set by an update may need its controller enabled down the container's ancestors (its
    create enabled only those it used then): the cgroup.subtree_control writes, top down."""
    out: list[tuple[str, str]] = []
    current = cgroup.mount_point
    for part in cgroup.path.split("/"):
        try:
            with open(os.path.join(current, "cgroup.subtree_control")) as f:
                enabled = set(f.read().split())
        except OSError:
            enabled = set()
        todo = [c for c in controllers if c not in enabled]
        if todo:
            out.append((os.path.join(current, "cgroup.subtree_control"), " ".join("+" + c for c in todo)))
        current = os.path.join(current, part)
    return out


def _wanted(name: str, r: UpdateRequest) -> bool:
    if name.startswith("memory."):
        if name in ("memory.limit_in_bytes", "memory.max"):
            return bool(r.memory)
        if name in ("memory.memsw.limit_in_bytes", "memory.swap.max"):
            return bool(r.memory or r.memory_swap)
        if name in ("memory.soft_limit_in_bytes", "memory.low"):
            return bool(r.memory_reservation)
        return False
    if name.startswith("cpu.") or name == "cpu.max":
        if name == "cpu.shares" or name == "cpu.weight":
            return bool(r.cpu_shares)
        return bool(r.nano_cpus or r.cpu_period or r.cpu_quota)
    if name == "cpuset.cpus":
        return bool(r.cpuset_cpus)
    if name == "cpuset.mems":
        return bool(r.cpuset_mems)
    if name == "pids.max":
        return r.pids_limit is not None
    return False


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"Cannot update container: cannot open {path}: {exc.strerror}") from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        what = os.path.basename(path)
        raise InvalidArgument(f"Cannot update container: writing {value} to {what}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def update(containers: ContainerService, ref: str, r: UpdateRequest) -> list[str]:
    """Apply an update: checked, written to the running container's cgroup, then saved. Returns warnings."""
    ncpu = os.cpu_count() or 1
    check_request(r, ncpu, set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(ncpu)))

    def change(c: Container) -> ContainerConfig:
        new = plan_update(c, r)
        if c.state.status in (Status.RUNNING, Status.PAUSED) and c.state.pid > 0:
            try:
                cgroup = cgroup_of(c.state.pid)
            except NotFound:
                return new          # it exited just now: the record is what counts
            for path, value in cgroup_writes(cgroup, new, r):
                if not os.path.exists(path) and path.endswith(("memsw.limit_in_bytes", "swap.max")):
                    warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not "
                                    "mounted. Memory limited without swap.")
                    continue
                _write(path, value)
        return new

    warnings: list[str] = []
    containers.replace_config(ref, change)
    return warnings
