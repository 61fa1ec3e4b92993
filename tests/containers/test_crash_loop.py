"""Robustness of the container engine against crashes: 50 create/start/rm cycles through berthd's raw API, with
berthd killed (-9) at random points (a seeded RNG; the seed is printed, BERTH_CRASH_SEED replays one) and started
again. After every restart each record parses or was quarantined with a log line, and the next operation on every
container (inspect, then rm -f) succeeds within seconds; at the end, with everything removed, nothing of the test is
left: no mount, cgroup, process or network namespace."""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import _mounts_under, _pids_mentioning

pytestmark = [pytest.mark.root, pytest.mark.slow]

CYCLES = 50
KILL_CHANCE = 0.25
QUICK = 5.0        # seconds any single operation may take after a restart


@pytest.fixture
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


def call(b: PrivateBerthd, method: str, path: str, body: object = None) -> tuple[int, bytes] | None:
    """The API call's answer, or None when berthd died under it."""
    data = json.dumps(body).encode() if body is not None else None
    try:
        return b.api(method, path, data)
    except (OSError, http.client.HTTPException):
        return None


def cycle(b: PrivateBerthd, rng: random.Random, seen: set[str]) -> None:
    cmd = rng.choice([["true"], ["sleep", "60"], ["sh", "-c", "echo hi; exit 3"]])
    answer = call(b, "POST", "/containers/create", {"Image": "busybox", "Cmd": cmd})
    if answer is None or answer[0] != 201:
        return
    cid = json.loads(answer[1])["Id"]
    seen.add(cid)
    if call(b, "POST", f"/containers/{cid}/start") is None:
        return
    if cmd[0] != "sleep" and rng.random() < 0.5:
        call(b, "POST", f"/containers/{cid}/wait?condition=not-running")
    call(b, "DELETE", f"/containers/{cid}?force=1")


def record_ids(b: PrivateBerthd) -> set[str]:
    return set(os.listdir(b.root / "containers")) if (b.root / "containers").exists() else set()


def check_records(b: PrivateBerthd, log_offset: int) -> set[str]:
    """Every record dir parses (config and state) and is listed; the ones that did not were quarantined with a
    log line. Returns the listed ids."""
    status, body = b.api("GET", "/containers/json?all=1")
    assert status == 200, body
    listed = {c["Id"] for c in json.loads(body)}
    for entry in record_ids(b):
        d = b.root / "containers" / entry
        assert entry in listed, f"record {entry} is neither listed nor quarantined: {sorted(os.listdir(d))}"
        json.loads((d / "config.json").read_bytes())
        json.loads((d / "state.json").read_bytes())
    quarantine = b.root / "quarantine"
    log = b.log_path.read_text(errors="replace")[log_offset:]
    for entry in os.listdir(quarantine) if quarantine.exists() else []:
        if entry not in log:       # quarantined by an earlier restart: that log is before the offset
            assert entry in b.log_path.read_text(errors="replace"), f"{entry} quarantined without a log line"
    return listed


def timed(b: PrivateBerthd, method: str, path: str, expect: int) -> None:
    started = time.monotonic()
    status, body = b.api(method, path)
    elapsed = time.monotonic() - started
    assert elapsed < QUICK, f"{method} {path} took {elapsed:.1f}s (a stuck lock?)"
    assert status == expect, f"{method} {path}: {status} {body!r}\n{b.log_tail()}"


def cgroups_of(ids: set[str]) -> list[str]:
    found = []
    for controller in Path("/sys/fs/cgroup").iterdir():
        parent = controller / "berth"
        if parent.is_dir():
            found += [str(parent / cid) for cid in ids if (parent / cid).exists()]
    return found


def test_fifty_create_start_rm_cycles_survive_kill_9_at_random_points(b: PrivateBerthd) -> None:
    seed = int(os.environ.get("BERTH_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"crash loop seed: {seed} (BERTH_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)
    seen: set[str] = set()
    kills = 0
    restarts: list[float] = []
    started = time.monotonic()
    for i in range(CYCLES):
        timer = None
        if rng.random() < KILL_CHANCE:
            timer = threading.Timer(rng.uniform(0.0, 0.5), b.kill)
            timer.start()
        cycle(b, rng, seen)
        if timer is None:
            continue
        timer.join()
        kills += 1
        seen |= record_ids(b)
        offset = b.log_path.stat().st_size
        restart = time.monotonic()
        b.start()
        restarts.append(time.monotonic() - restart)
        for cid in check_records(b, offset):
            timed(b, "GET", f"/containers/{cid}/json", 200)
            state = json.loads(b.api("GET", f"/containers/{cid}/json")[1])["State"]
            status = state["Status"]
            if status == "running":     # the state says what runs
                assert state["Pid"] > 0 and Path(f"/proc/{state['Pid']}").exists(), state
            if status in ("created", "exited"):     # a container that does not run holds no mount or netns
                assert _mounts_under(str(b.root / "containers" / cid)) == [], state
                assert _mounts_under(str(b.exec_root / "netns" / cid[:16])) == [], state
            if status == "created":     # made but never started, or its start rolled back: it starts now
                timed(b, "POST", f"/containers/{cid}/start", 204)
            timed(b, "DELETE", f"/containers/{cid}?force=1", 204)
        left = {cid: sorted(os.listdir(b.root / "containers" / cid)) for cid in record_ids(b)}
        assert not left, f"cycle {i}: records left after rm -f of all: {left}\n{b.log_tail()}"
    elapsed = time.monotonic() - started
    print(f"crash loop: {CYCLES} cycles, {kills} kills, {elapsed:.1f}s; restarts took {sum(restarts):.1f}s "
          f"(longest {max(restarts, default=0):.1f}s)")
    log = b.log_path.read_text(errors="replace")
    print("recoveries:", {what: log.count(what) for what in (
        "whose create a crash interrupted", "whose removal a crash interrupted", "rolled back the start",
        "exited while berthd was down", "still running", "did not parse", "released the rootfs")})
    # the leak checks below look where berth puts things: one live container shows they would see a leak
    answer = b.api("POST", "/containers/create", json.dumps({"Image": "busybox", "Cmd": ["sleep", "60"]}).encode())
    probe = json.loads(answer[1])["Id"]
    assert b.api("POST", f"/containers/{probe}/start")[0] == 204
    netns_dir = b.exec_root / "netns"
    assert cgroups_of({probe}) and _mounts_under(str(b.root / "containers" / probe))
    assert len(_pids_mentioning(str(b.dir))) > 1 and list(netns_dir.iterdir())
    seen |= record_ids(b)
    status, body = b.api("GET", "/containers/json?all=1")
    for c in json.loads(body):
        timed(b, "DELETE", f"/containers/{c['Id']}?force=1", 204)
    assert record_ids(b) == set()
    b.stop()
    assert _mounts_under(str(b.dir)) == []
    assert cgroups_of(seen) == []
    assert _pids_mentioning(str(b.dir)) == []
    assert not netns_dir.exists() or list(netns_dir.iterdir()) == []


def test_a_record_that_does_not_parse_is_quarantined_with_a_log_line(b: PrivateBerthd) -> None:
    answer = b.api("POST", "/containers/create", json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode())
    bad = json.loads(answer[1])["Id"]
    answer = b.api("POST", "/containers/create", json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode())
    good = json.loads(answer[1])["Id"]
    b.kill()
    (b.root / "containers" / bad / "config.json").write_text('{"id": "' + bad + '", "created"')   # torn by hand
    offset = b.log_path.stat().st_size
    b.start()
    status, body = b.api("GET", "/containers/json?all=1")
    assert status == 200 and [c["Id"] for c in json.loads(body)] == [good]
    assert (b.root / "quarantine" / bad).is_dir() and not (b.root / "containers" / bad).exists()
    log = b.log_path.read_text(errors="replace")[offset:]
    assert f"container record {bad} did not parse" in log, log
    assert b.api("GET", f"/containers/{bad}/json")[0] == 404
    timed(b, "DELETE", f"/containers/{good}?force=1", 204)
