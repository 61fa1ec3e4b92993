"""Cgroup limits are enforced, not only written: OOM kill, a fork bomb against pids.max, a cpu quota."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.conftest import Bundles, Runtime, container_id

from berth.runtime import api

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_a_process_over_the_memory_limit_is_oom_killed_and_reported(berth: Runtime, bundles: Bundles,
                                                                    request: pytest.FixtureRequest) -> None:
    cid = container_id(request)

    def limit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
        # busybox `head -c` of /dev/zero into a shell variable grows the shell past 32 MiB
        cfg["process"]["args"] = ["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"]

    berth("create", "-b", str(bundles.make([], mutate=limit)), cid, check=True)
    pid = json.loads(berth("state", cid, check=True).stdout)["pid"]
    berth("start", cid, check=True)
    deadline = time.monotonic() + 30
    while json.loads(berth("state", cid, check=True).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container outlived its memory limit"
        time.sleep(0.05)
    assert api.oom_killed(cid, berth.root)
    assert pid > 0


def test_run_exits_137_when_the_init_is_oom_killed(berth: Runtime, bundles: Bundles,
                                                   request: pytest.FixtureRequest) -> None:
    def limit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
        # the init itself grows (awk as pid 1), so the OOM killer takes the container's main process
        cfg["process"]["args"] = ["awk", "BEGIN { s = \"a\"; while (1) s = s s }"]

    bundle = bundles.make([], mutate=limit)
    out = berth("run", "-b", str(bundle), container_id(request), timeout=60)
    assert out.returncode == 137


def test_a_fork_bomb_stops_at_the_pids_limit(berth: Runtime, bundles: Bundles,
                                             request: pytest.FixtureRequest) -> None:
    cid = container_id(request)

    def limit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["pids"] = {"limit": 32}
        cfg["process"]["args"] = ["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 3; echo alive"]

    berth("run", "-d", "-b", str(bundles.make([], mutate=limit)), cid, check=True)
    time.sleep(2)
    pids = json.loads(berth("ps", "--format", "json", cid, check=True).stdout)
    assert 1 < len(pids) <= 32
    # the host still forks fine
    assert subprocess.run(["true"]).returncode == 0
    berth("delete", "--force", cid, check=True)


def test_a_cpu_quota_of_half_a_cpu_holds_a_busy_loop_near_50_percent(berth: Runtime, bundles: Bundles,
                                                                     request: pytest.FixtureRequest) -> None:
    cid = container_id(request)

    def limit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"]["cpu"] = {"quota": 50000, "period": 100000}
        cfg["process"]["args"] = ["sh", "-c", "while :; do :; done"]

    berth("run", "-d", "-b", str(bundles.make([], mutate=limit)), cid, check=True)
    pid = json.loads(berth("state", cid, check=True).stdout)["pid"]
    ticks = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), _cpu(pid)
    time.sleep(2.0)
    share = (_cpu(pid) - c0) / ticks / (time.monotonic() - t0)
    # the quota is a ceiling: on a loaded machine the loop may get less, never more (0.6 leaves room for
    # accounting granularity)
    assert 0.2 < share < 0.6, share
    berth("delete", "--force", cid, check=True)


def _cpu(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
