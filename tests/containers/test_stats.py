"""docker stats: the cgroup v2 reader against a fake tree in the kernel's file formats, the v1 reader against a
real cgroup of this machine, Docker's JSON, and `docker stats` / docker-py against berthd."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.api.stats_json import ZERO_TIME, go_time, stats_json
from berth.engine import stats
from berth.runtime.cgroups import host_hierarchies, open_cgroup
from tests.berthd import PrivateBerthd
from tests.containers.extra_daemon import b, client, run_d  # noqa: F401

V2_FILES = {
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 3\n"
                "throttled_usec 1200\nnr_bursts 0\nburst_usec 0\n",
    "memory.current": "10485760\n",
    "memory.max": "67108864\n",
    "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
    "memory.stat": "anon 4096000\nfile 2048000\nkernel_stack 16384\nsock 0\nshmem 0\nfile_mapped 0\n"
                   "inactive_anon 0\nactive_anon 4096000\ninactive_file 1024000\nactive_file 1024000\n"
                   "pgfault 1000\npgmajfault 2\n",
    "pids.current": "3\n",
    "pids.max": "max\n",
    "io.stat": "8:0 rbytes=1048576 wbytes=4096 rios=20 wios=1 dbytes=0 dios=0\n"
               "253:1 rbytes=0 wbytes=8192 rios=0 wios=2 dbytes=0 dios=0\n",
}


def _tree(root: Path, files: dict[str, str]) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return str(root)


def _sample(usage: stats.CgroupUsage, read_ns: int = 1_700_000_000_123_456_789) -> stats.Sample:
    return stats.Sample(read_ns, usage, system_cpu=9_000_000_000, online_cpus=2, host_memory=8 << 30)


# -- cgroup v2, from a fake tree ---------------------------------------------------------------------------


def test_v2_reader_takes_every_counter_from_the_kernels_formats(tmp_path: Path) -> None:
    u = stats.read_v2(_tree(tmp_path / "c", V2_FILES))
    assert u.version == 2
    assert (u.cpu.total, u.cpu.user, u.cpu.kernel) == (2_500_000_000, 2_000_000_000, 500_000_000)
    assert (u.cpu.periods, u.cpu.throttled_periods, u.cpu.throttled_time) == (40, 3, 1_200_000)
    assert u.cpu.percpu is None
    assert (u.memory.usage, u.memory.limit, u.memory.failcnt, u.memory.max_usage) == (10485760, 67108864, 7, None)
    assert u.memory.stats["inactive_file"] == 1024000 and u.memory.stats["anon"] == 4096000
    assert (u.pids_current, u.pids_limit) == (3, None)
    assert [(e.major, e.minor, e.op, e.value) for e in u.io_bytes] == [
        (8, 0, "read", 1048576), (8, 0, "write", 4096), (253, 1, "read", 0), (253, 1, "write", 8192)]
    assert [(e.op, e.value) for e in u.io_ops][:2] == [("read", 20), ("write", 1)]


def test_v2_json_has_no_v1_only_fields_and_shows_the_hosts_memory_for_no_limit(tmp_path: Path) -> None:
    files = {**V2_FILES, "memory.max": "max\n", "pids.max": "100\n"}
    u = stats.read_v2(_tree(tmp_path / "c", files))
    out = stats_json("web", "ab" * 32, _sample(u), None)
    assert out["name"] == "/web" and out["id"] == "ab" * 32
    assert out["read"] == "2023-11-14T22:13:20.123456789Z" and out["preread"] == ZERO_TIME
    usage = out["cpu_stats"]["cpu_usage"]
    assert "percpu_usage" not in usage and usage["total_usage"] == 2_500_000_000
    assert out["cpu_stats"]["online_cpus"] == 2 and out["cpu_stats"]["system_cpu_usage"] == 9_000_000_000
    assert "max_usage" not in out["memory_stats"] and out["memory_stats"]["limit"] == 8 << 30
    assert out["pids_stats"] == {"current": 3, "limit": 100}
    assert out["blkio_stats"]["io_service_bytes_recursive"][0] == {"major": 8, "minor": 0, "op": "read",
                                                                   "value": 1048576}
    assert out["blkio_stats"]["io_queue_recursive"] is None
    assert out["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and "networks" not in out
    json.dumps(out)


def test_missing_and_garbled_files_read_as_zero_not_as_an_error(tmp_path: Path) -> None:
    d = _tree(tmp_path / "c", {"cpu.stat": "usage_usec notanumber\nuser_usec 5\n", "memory.current": "x\n",
                               "io.stat": "garbage line\n8:x rbytes=1\n"})
    u = stats.read_v2(d)
    assert (u.cpu.total, u.cpu.user, u.memory.usage, u.pids_current, u.io_bytes) == (0, 5000, 0, 0, ())
    assert stats.read_v2(str(tmp_path / "gone")).cpu.total == 0


def test_v1_reader_against_a_fake_tree_of_v1_files(tmp_path: Path) -> None:
    acct = _tree(tmp_path / "cpuacct", {"cpuacct.usage": "3000\n", "cpuacct.usage_percpu": "1000 2000 \n",
                                        "cpuacct.stat": "user 7\nsystem 3\n"})
    cpu = _tree(tmp_path / "cpu", {"cpu.stat": "nr_periods 5\nnr_throttled 1\nthrottled_time 99\n"})
    mem = _tree(tmp_path / "memory", {"memory.usage_in_bytes": "4096\n", "memory.max_usage_in_bytes": "8192\n",
                                      "memory.limit_in_bytes": "9223372036854771712\n", "memory.failcnt": "0\n",
                                      "memory.stat": "cache 0\nrss 4096\ntotal_inactive_file 0\n"})
    blk = _tree(tmp_path / "blkio", {"blkio.io_service_bytes_recursive": "Total 0\n",
                                     "blkio.throttle.io_service_bytes_recursive":
                                         "8:0 Read 512\n8:0 Write 1024\n8:0 Total 1536\nTotal 1536\n"})
    u = stats.read_v1({"cpuacct": acct, "cpu": cpu, "memory": mem, "blkio": blk})
    assert (u.cpu.total, u.cpu.percpu) == (3000, (1000, 2000))
    assert (u.cpu.user, u.cpu.kernel) == (7 * stats.NS_PER_TICK, 3 * stats.NS_PER_TICK)
    assert (u.cpu.periods, u.cpu.throttled_time) == (5, 99)
    assert (u.memory.usage, u.memory.max_usage, u.memory.limit) == (4096, 8192, None)
    assert [(e.op, e.value) for e in u.io_bytes] == [("Read", 512), ("Write", 1024), ("Total", 1536)]
    out = stats_json("x", "1" * 64, _sample(u), None)
    assert out["cpu_stats"]["cpu_usage"]["percpu_usage"] == [1000, 2000]
    assert out["memory_stats"]["max_usage"] == 8192 and out["memory_stats"]["limit"] == 8 << 30
    assert out["blkio_stats"]["io_queue_recursive"] == []


def test_proc_parsers() -> None:
    dev = ("Inter-|   Receive                                                |  Transmit\n"
           " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
           "carrier compressed\n"
           "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0 "
           "      0          0\n"
           "  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0 "
           "      0          0\n")
    assert stats.parse_net_dev(dev) == {"eth0": stats.NetDev(1296, 16, 1, 2, 726, 9, 3, 4)}
    assert stats.parse_system_cpu("cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 1 1 1 1 1 1\n") == \
        280 * stats.NS_PER_TICK
    assert go_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert go_time(1_700_000_000_100_000_000) == "2023-11-14T22:13:20.1Z"


def test_an_empty_sample_is_dockers_zero_stats() -> None:
    out = stats_json("idle", "2" * 64, None, None)
    assert out["read"] == ZERO_TIME and out["pids_stats"] == {} and out["memory_stats"] == {}
    assert out["cpu_stats"] == {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


# -- the real cgroup of this machine ---------------------------------------------------------------------------


@pytest.fixture
def busy_cgroup() -> Iterator[tuple[stats.CgroupUsage, int]]:
    """A fresh cgroup (v1 or v2, whichever this host runs) with one busy process in it; read after 0.5 s."""
    if os.geteuid() != 0:
        pytest.skip("creating a cgroup needs root")
    cg = open_cgroup(f"/berth-stats-test-{secrets.token_hex(4)}", "x")
    cg.create(None)
    # memory is charged where it is allocated: the shell allocates only once it is in the cgroup
    proc = subprocess.Popen(["sh", "-c", 'read go; x=$(head -c 2000000 /dev/zero | tr "\\0" a); '
                                         "while :; do :; done"], stdin=subprocess.PIPE)
    try:
        cg.add(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        time.sleep(0.5)
        yield stats.read_cgroup(stats.cgroup_of(proc.pid)), proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cg.destroy()


@pytest.mark.root
def test_the_reader_for_this_hosts_cgroups_sees_a_busy_process(busy_cgroup: tuple[stats.CgroupUsage, int]) -> None:
    usage, pid = busy_cgroup
    version, _ = host_hierarchies()
    assert usage.version == version
    assert usage.cpu.total > 100_000_000          # 0.5 s of a busy loop: well over 0.1 s of CPU
    assert usage.pids_current == 1
    assert usage.memory.usage > 0
    if version == 1:
        assert usage.cpu.percpu and sum(usage.cpu.percpu) == pytest.approx(usage.cpu.total, rel=0.05)
        assert usage.memory.max_usage and usage.memory.max_usage >= usage.memory.usage
    s = stats.sample(stats.cgroup_of(pid), pid)
    assert s.system_cpu > 0 and s.online_cpus >= 1 and s.host_memory > 0


@pytest.mark.root
def test_the_v2_reader_against_a_real_cgroup2_directory() -> None:
    """On a v1 host with systemd's hybrid layout, /sys/fs/cgroup/unified is a real cgroup2 hierarchy without
    controllers: its cpu.stat is the kernel's own v2 format (on a v2 host the test above covers v2)."""
    unified = Path("/sys/fs/cgroup/unified")
    if host_hierarchies()[0] == 2 or not (unified / "cgroup.procs").exists():
        pytest.skip("no hybrid cgroup2 hierarchy at /sys/fs/cgroup/unified")
    d = unified / f"berth-stats-v2-{secrets.token_hex(4)}"
    d.mkdir()
    proc = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        (d / "cgroup.procs").write_text(str(proc.pid))
        time.sleep(0.5)
        u = stats.read_v2(str(d))
        assert u.version == 2 and u.cpu.total > 100_000_000
        assert u.cpu.user + u.cpu.kernel == pytest.approx(u.cpu.total, rel=0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for _ in range(100):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.01)


def test_cgroup_of_a_gone_process_is_not_found() -> None:
    from berth.errors import NotFound
    with pytest.raises(NotFound):
        stats.cgroup_of(2**22 + 7)


# -- through berthd ---------------------------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.slow
def test_docker_stats_no_stream_shows_cpu_memory_and_pids(b: PrivateBerthd) -> None:  # noqa: F811
    # two busy loops: on a loaded 2-core machine one alone may get less than half a CPU
    run_d(b, "spin", "--memory", "64m", "--pids-limit", "20", "busybox", "sh", "-c",
          "while :; do :; done & while :; do :; done")
    run_d(b, "idle", "busybox", "sleep", "1000")
    try:
        time.sleep(0.5)
        best, took = 0.0, 0.0
        for _ in range(3):      # a loaded machine (CI, other tests) may starve the spinner for a second
            started = time.monotonic()
            out = b.docker("stats", "--no-stream", "--format", "{{json .}}").stdout.decode()
            took = time.monotonic() - started
            rows = {r["Name"]: r for r in map(json.loads, out.splitlines())}
            assert set(rows) == {"spin", "idle"}
            best = max(best, float(rows["spin"]["CPUPerc"].rstrip("%")))
            assert float(rows["idle"]["CPUPerc"].rstrip("%")) < 20
            if best > 50:
                break
        # two busy loops get well over half a CPU, unless the host runs more busy work than it has CPUs
        assert best > (50 if os.getloadavg()[0] < 4 else 15), (best, os.getloadavg())
        usage, limit = rows["spin"]["MemUsage"].split(" / ")
        assert limit == "64MiB" and not usage.startswith("0B")
        assert rows["spin"]["PIDs"] == "2"
        assert took < 5
    finally:
        b.docker("rm", "-f", "spin", "idle")


@pytest.mark.root
@pytest.mark.slow
def test_stats_stream_one_shot_and_docker_py(b: PrivateBerthd) -> None:  # noqa: F811
    cid = run_d(b, "streamer", "busybox", "sh", "-c", "while :; do :; done")
    api = client(b)
    try:
        one = api.stats("streamer", stream=False)
        assert one["id"] == cid and one["name"] == "/streamer"
        assert one["preread"] != ZERO_TIME and one["precpu_stats"]["system_cpu_usage"] > 0
        assert one["cpu_stats"]["cpu_usage"]["total_usage"] > one["precpu_stats"]["cpu_usage"]["total_usage"]
        for key in ("read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
                    "precpu_stats", "memory_stats", "name", "id"):
            assert key in one
        started = time.monotonic()
        shot = api.stats("streamer", stream=False, one_shot=True)
        assert time.monotonic() - started < 0.5
        assert shot["preread"] == ZERO_TIME and shot["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        frames = api.stats("streamer", decode=True, stream=True)
        first, second = next(frames), next(frames)
        frames.close()
        assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
        status, body = b.api("GET", "/containers/streamer/stats?stream=1&one-shot=1")
        assert status == 400
    finally:
        b.docker("rm", "-f", "streamer")


@pytest.mark.root
def test_stats_of_a_stopped_or_unknown_container(b: PrivateBerthd) -> None:  # noqa: F811
    b.docker("create", "--name", "resting", "busybox", "true")
    try:
        status, body = b.api("GET", "/containers/resting/stats?stream=0")
        out = json.loads(body)
        assert status == 200 and out["read"] == ZERO_TIME and out["name"] == "/resting"
        assert out["memory_stats"] == {} and out["pids_stats"] == {}
        status, body = b.api("GET", "/containers/nosuch/stats?stream=0")
        assert status == 404 and b"No such container: nosuch" in body
        proc = b.docker("stats", "--no-stream", "nosuch", check=False)
        assert proc.returncode != 0 and b"No such container" in proc.stderr
    finally:
        b.docker("rm", "-f", "resting")


@pytest.mark.root
def test_network_counters_are_the_containers_own(b: PrivateBerthd) -> None:  # noqa: F811
    run_d(b, "netown", "busybox", "sleep", "1000")
    run_d(b, "nethost", "--network", "host", "busybox", "sleep", "1000")
    try:
        own = client(b).stats("netown", stream=False, one_shot=True)
        assert set(own.get("networks", {})) <= {"eth0"}       # the container's netns: no host interface
        assert "networks" not in client(b).stats("nethost", stream=False, one_shot=True)
    finally:
        b.docker("rm", "-f", "netown", "nethost")


@pytest.mark.root
@pytest.mark.slow
def test_a_stats_stream_ends_when_the_container_stops(b: PrivateBerthd) -> None:  # noqa: F811
    run_d(b, "brief", "busybox", "sleep", "2")
    try:
        started = time.monotonic()
        frames = list(client(b).stats("brief", decode=True, stream=True))
        assert time.monotonic() - started < 8
        assert 1 <= len(frames) <= 5 and frames[0]["name"] == "/brief"
        assert all(f["read"] != ZERO_TIME for f in frames)
    finally:
        b.docker("rm", "-f", "brief")
