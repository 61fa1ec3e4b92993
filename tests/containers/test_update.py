"""docker update: Docker's checks and conflicts (pure), the cgroup files written for v1 and v2, and live updates
of running and stopped containers through berthd, kept in the record across a restart."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from berth.engine import update as upd
from berth.engine.containers import Container, ContainerConfig, ContainerState, RestartPolicy, Status
from berth.engine.stats import cgroup_of
from berth.errors import Conflict, InvalidArgument
from berth.oci.digest import Digest
from berth.runtime.cgroups import CgroupV1, CgroupV2
from tests.berthd import PrivateBerthd
from tests.containers.extra_daemon import b, client, run_d  # noqa: F401

MiB = 1024 * 1024


def _container(**config: Any) -> Container:
    cfg = ContainerConfig(image="busybox", image_id=Digest("sha256", "0" * 64), args=("true",), **config)
    return Container("c" * 64, "2026-01-01T00:00:00.000000000Z", cfg, ContainerState("x", Status.RUNNING, pid=1),
                     Path("/nonexistent"))


# -- parsing and Docker's checks -------------------------------------------------------------------------


def test_parse_update_reads_the_wire_fields() -> None:
    r = upd.parse_update({"Memory": 64 * MiB, "MemorySwap": -1, "NanoCpus": 5 * 10**8, "CpuShares": 512,
                          "PidsLimit": 0, "CpusetCpus": "0", "RestartPolicy": {"Name": "on-failure",
                                                                               "MaximumRetryCount": 3},
                          "BlkioWeight": 0, "KernelMemory": 0})
    assert (r.memory, r.memory_swap, r.nano_cpus, r.cpu_shares, r.pids_limit, r.cpuset_cpus) == \
        (64 * MiB, -1, 5 * 10**8, 512, 0, "0")
    assert r.restart_policy == RestartPolicy("on-failure", 3)
    assert upd.parse_update({"RestartPolicy": {"Name": ""}}).restart_policy is None


@pytest.mark.parametrize(("body", "message"), [
    ({"Memory": "12x"}, "invalid Memory"),
    ({"Memory": True}, "invalid Memory"),
    ({"PidsLimit": "many"}, "invalid PidsLimit"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy 'sometimes'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, "maximum retry count cannot be used"),
])
def test_parse_update_refuses_bad_values(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        upd.parse_update(body)


@pytest.mark.parametrize(("body", "message"), [
    ({"Memory": 1 * MiB}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 * MiB, "MemorySwap": 32 * MiB}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100000}, "Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 3 * 10**9}, r"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": -1}, "Range of CPUs"),
    ({"CpuPeriod": 500}, "CPU cfs period can not be less than 1ms"),
    ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms"),
    ({"CpusetCpus": "0-"}, "Invalid value 0- for cpuset cpus"),
    ({"CpusetCpus": "3-1"}, "Invalid value 3-1 for cpuset cpus"),
    ({"CpusetCpus": "0,5"}, "Requested CPUs are not available - requested 0,5, available: 0,1"),
    ({"CpuShares": -2}, "CPU shares"),
])
def test_dockers_checks_on_each_value(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        upd.check_request(upd.parse_update(body), 2, {0, 1})


def test_conflicts_with_what_the_container_already_has() -> None:
    nano = _container(nano_cpus=10**9)
    with pytest.raises(Conflict, match="NanoCPUs cannot be updated as CPU Period has already been set"):
        upd.plan_update(nano, upd.UpdateRequest(cpu_period=50000))
    quota = _container(cpu_quota=50000)
    with pytest.raises(Conflict, match="CPU Quota cannot be updated as NanoCPUs has already been set"):
        upd.plan_update(quota, upd.UpdateRequest(nano_cpus=10**9))
    limited = _container(memory=64 * MiB)         # swap defaults to 2 x 64 MiB, as dockerd records it
    assert upd.plan_update(limited, upd.UpdateRequest(memory=100 * MiB)).memory == 100 * MiB
    with pytest.raises(Conflict, match="Memory limit should be smaller than already set memoryswap limit"):
        upd.plan_update(limited, upd.UpdateRequest(memory=200 * MiB))
    with pytest.raises(Conflict, match=f"Cannot update container {'c' * 64}: Memory limit should be smaller"):
        upd.plan_update(_container(), upd.UpdateRequest(memory=100 * MiB))
    rm = _container(auto_remove=True)
    with pytest.raises(InvalidArgument, match="AutoRemove is enabled"):
        upd.plan_update(rm, upd.UpdateRequest(restart_policy=RestartPolicy("always")))
    dead = replace(_container(), state=ContainerState("x", Status.DEAD))
    with pytest.raises(Conflict, match="marked for removal"):
        upd.plan_update(dead, upd.UpdateRequest(cpu_shares=512))


def test_the_plan_keeps_what_the_request_leaves_out() -> None:
    c = _container(memory=64 * MiB, cpu_shares=256, pids_limit=10, restart_policy=RestartPolicy("always"))
    new = upd.plan_update(c, upd.UpdateRequest(nano_cpus=5 * 10**8))
    assert (new.memory, new.memory_swap, new.cpu_shares, new.pids_limit, new.nano_cpus, new.restart_policy.name) == \
        (64 * MiB, 0, 256, 10, 5 * 10**8, "always")
    assert upd.plan_update(c, upd.UpdateRequest(pids_limit=-1)).pids_limit == 0
    swapped = upd.plan_update(c, upd.UpdateRequest(memory=96 * MiB, memory_swap=-1))
    assert (swapped.memory, swapped.memory_swap) == (96 * MiB, -1)


# -- the cgroup files written ----------------------------------------------------------------------------


def test_v2_writes(tmp_path: Path) -> None:
    for d, enabled in ((tmp_path, "cpu memory pids\n"), (tmp_path / "c1", "")):
        d.mkdir(exist_ok=True)
        (d / "cgroup.subtree_control").write_text(enabled)
    cg = CgroupV2(str(tmp_path), "c1")
    c = _container(memory=64 * MiB)
    r = upd.UpdateRequest(memory=96 * MiB, memory_swap=128 * MiB, nano_cpus=5 * 10**8, cpu_shares=1024,
                          pids_limit=-1)
    writes = upd.cgroup_writes(cg, upd.plan_update(c, r), r)
    d = str(tmp_path / "c1")
    assert writes == [(f"{d}/memory.max", str(96 * MiB)), (f"{d}/memory.swap.max", str(32 * MiB)),
                      (f"{d}/cpu.weight", "39"), (f"{d}/cpu.max", "50000 100000"), (f"{d}/pids.max", "max")]
    only_pids = upd.UpdateRequest(pids_limit=50)
    assert upd.cgroup_writes(cg, upd.plan_update(c, only_pids), only_pids) == [(f"{d}/pids.max", "50")]


def test_v2_enables_a_controller_the_container_was_created_without(tmp_path: Path) -> None:
    (tmp_path / "berth" / "c1").mkdir(parents=True)
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    (tmp_path / "berth" / "cgroup.subtree_control").write_text("pids\n")
    cg = CgroupV2(str(tmp_path), "berth/c1")
    r = upd.UpdateRequest(memory=96 * MiB, memory_swap=-1, cpuset_cpus="0")
    writes = upd.cgroup_writes(cg, upd.plan_update(_container(), r), r)
    assert writes == [(f"{tmp_path}/cgroup.subtree_control", "+cpuset"),
                      (f"{tmp_path}/berth/cgroup.subtree_control", "+cpuset +memory"),
                      (f"{tmp_path}/berth/c1/memory.max", str(96 * MiB)),
                      (f"{tmp_path}/berth/c1/memory.swap.max", "max"),
                      (f"{tmp_path}/berth/c1/cpuset.cpus", "0")]


def test_v1_raises_memsw_before_the_limit_and_lowers_it_after(tmp_path: Path) -> None:
    places = {c: (str(tmp_path / c), "c1") for c in ("memory", "cpu", "cpuset", "pids")}
    mem = tmp_path / "memory" / "c1"
    mem.mkdir(parents=True)
    (mem / "memory.memsw.limit_in_bytes").write_text(f"{128 * MiB}\n")
    cg = CgroupV1(places)
    c = _container(memory=64 * MiB)
    up = upd.UpdateRequest(memory=200 * MiB, memory_swap=400 * MiB)
    names = [os.path.basename(p) for p, _ in upd.cgroup_writes(cg, upd.plan_update(c, up), up)]
    assert names == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    down = upd.UpdateRequest(memory=32 * MiB, memory_swap=64 * MiB)
    writes = upd.cgroup_writes(cg, upd.plan_update(c, down), down)
    assert [(os.path.basename(p), v) for p, v in writes] == [("memory.limit_in_bytes", str(32 * MiB)),
                                                             ("memory.memsw.limit_in_bytes", str(64 * MiB))]
    cpu = upd.UpdateRequest(cpu_quota=20000, cpu_period=100000, cpuset_cpus="0")
    writes = upd.cgroup_writes(cg, upd.plan_update(_container(), cpu), cpu)
    assert [(os.path.relpath(p, tmp_path), v) for p, v in writes] == [
        ("cpu/c1/cpu.cfs_period_us", "100000"), ("cpu/c1/cpu.cfs_quota_us", "20000"), ("cpuset/c1/cpuset.cpus", "0")]


# -- through berthd ---------------------------------------------------------------------------------------


def _cgroup_value(daemon: PrivateBerthd, name: str, v1: tuple[str, str], v2: tuple[str, str]) -> str:
    pid = json.loads(daemon.docker("inspect", name).stdout)[0]["State"]["Pid"]
    cg = cgroup_of(pid)
    if isinstance(cg, CgroupV2):
        return Path(cg.dir, v2[1]).read_text().strip()
    return Path(cg.dir(v1[0]), v1[1]).read_text().strip()


def _host_config(daemon: PrivateBerthd, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(daemon.docker("inspect", name).stdout)[0]["HostConfig"]
    return out


@pytest.mark.root
@pytest.mark.slow
def test_update_a_running_container_live_and_for_its_next_start(b: PrivateBerthd) -> None:  # noqa: F811
    run_d(b, "upd", "--memory", "64m", "busybox", "sleep", "1000")
    try:
        proc = b.docker("update", "--memory", "96m", "--memory-swap", "192m", "--cpus", "0.5", "--cpu-shares", "512",
                        "--pids-limit", "30", "--restart", "on-failure:2", "upd")
        assert proc.stdout == b"upd\n"
        mem = ("memory", "memory.limit_in_bytes"), ("", "memory.max")
        assert _cgroup_value(b, "upd", *mem) == str(96 * MiB)
        assert _cgroup_value(b, "upd", ("cpu", "cpu.cfs_quota_us"), ("", "cpu.max")) in ("50000", "50000 100000")
        assert _cgroup_value(b, "upd", ("pids", "pids.max"), ("", "pids.max")) == "30"
        hc = _host_config(b, "upd")
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == \
            (96 * MiB, 192 * MiB, 5 * 10**8, 512, 30)
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        b.docker("restart", "-t", "0", "upd")
        assert _cgroup_value(b, "upd", *mem) == str(96 * MiB)
        assert _cgroup_value(b, "upd", ("pids", "pids.max"), ("", "pids.max")) == "30"
        b.docker("update", "--pids-limit", "-1", "upd")
        assert _cgroup_value(b, "upd", ("pids", "pids.max"), ("", "pids.max")) == "max"
        assert _host_config(b, "upd")["PidsLimit"] is None
        assert client(b).update_container("upd", mem_limit="80m") == {"Warnings": []}
        assert _cgroup_value(b, "upd", *mem) == str(80 * MiB)
    finally:
        b.docker("rm", "-f", "upd")


@pytest.mark.root
def test_update_a_stopped_container_applies_at_start(b: PrivateBerthd) -> None:  # noqa: F811
    b.docker("create", "--name", "updcold", "busybox", "sleep", "1000")
    try:
        b.docker("update", "--memory", "48m", "--memory-swap", "-1", "updcold")
        b.docker("start", "updcold")
        assert _cgroup_value(b, "updcold", ("memory", "memory.limit_in_bytes"), ("", "memory.max")) == str(48 * MiB)
    finally:
        b.docker("rm", "-f", "updcold")


@pytest.mark.root
def test_bad_updates_change_nothing(b: PrivateBerthd) -> None:  # noqa: F811
    run_d(b, "updbad", "--memory", "64m", "--cpus", "1", "busybox", "sleep", "1000")
    b.docker("create", "--name", "updrm", "--rm", "busybox", "true")
    try:
        cases = [
            (("--memory", "1m", "updbad"), "Minimum memory limit allowed is 6MB"),
            (("--memory", "512m", "updbad"), "Memory limit should be smaller than already set memoryswap limit"),
            (("--cpu-period", "50000", "updbad"), "NanoCPUs cannot be updated as CPU Period has already been set"),
            (("--cpus", "64", "updbad"), "Range of CPUs is from 0.01 to"),
            (("--cpuset-cpus", "99", "updbad"), "Requested CPUs are not available"),
            (("--restart", "always", "updrm"), "Restart policy cannot be updated because AutoRemove is enabled"),
            (("--memory", "64m", "nosuch"), "No such container: nosuch"),
        ]
        for args, message in cases:
            proc = b.docker("update", *args, check=False)
            assert proc.returncode != 0 and message.encode() in proc.stderr, (args, proc.stderr)
        for body in (b"not json", b'{"Memory": "12x"}', b'{"RestartPolicy": {"Name": "sometimes"}}', b"[1]"):
            status, _ = b.api("POST", "/containers/updbad/update", body)
            assert status == 400, body
        hc = _host_config(b, "updbad")
        assert (hc["Memory"], hc["NanoCpus"], hc["CpuPeriod"], hc["CpusetCpus"]) == (64 * MiB, 10**9, 0, "")
        assert _cgroup_value(b, "updbad", ("memory", "memory.limit_in_bytes"), ("", "memory.max")) == str(64 * MiB)
    finally:
        b.docker("rm", "-f", "updbad", "updrm")
