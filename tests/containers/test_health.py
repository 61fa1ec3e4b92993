"""Healthchecks: Docker's state machine (pure), and probes run by berthd through exec, driven by the real docker CLI:
healthy then unhealthy, the start period, a probe that hangs past its timeout, a command that does not exist,
the image's HEALTHCHECK and --no-healthcheck, ps's status and health filter, events, and a kill -9 of berthd."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from berth.engine.health import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    Probe,
    apply_result,
    go_duration,
    health_at_start,
    health_at_stop,
    merge_healthcheck,
    validate_healthcheck,
)
from berth.errors import InvalidArgument
from berth.oci.config import Healthcheck
from tests.berthd import PrivateBerthd

MS = 1_000_000
S = 1_000_000_000


# -- the state machine, no root ---------------------------------------------------------------------------

def _result(code: int) -> dict[str, Any]:
    return {"start": "s", "end": "e", "exit_code": code, "output": "x"}


def test_retries_failures_in_a_row_make_it_unhealthy_and_one_success_heals() -> None:
    probe = Probe(("true",), retries=2)
    h = health_at_start({"Test": ["CMD", "true"]}, None)
    assert h == {"status": STARTING, "failing_streak": 0, "log": []}
    h = apply_result(h, probe, _result(1), 0, 10)
    assert (h["status"], h["failing_streak"]) == (STARTING, 1)
    h = apply_result(h, probe, _result(1), 0, 20)
    assert (h["status"], h["failing_streak"]) == (UNHEALTHY, 2)
    h = apply_result(h, probe, _result(0), 0, 30)
    assert (h["status"], h["failing_streak"]) == (HEALTHY, 0)
    for i in range(10):
        h = apply_result(h, probe, _result(i), 0, 40 + i)
    assert [e["exit_code"] for e in h["log"]] == [5, 6, 7, 8, 9]     # the last five
    assert health_at_stop(h)["status"] == UNHEALTHY
    assert health_at_start({"Test": ["CMD", "true"]}, h)["log"] == h["log"]


def test_failures_in_the_start_period_do_not_count_while_starting() -> None:
    probe = Probe(("true",), retries=1, start_period=10 * S)
    h = apply_result(None, probe, _result(1), 0, 5 * S)
    assert (h["status"], h["failing_streak"]) == (STARTING, 0)
    h = apply_result(h, probe, _result(1), 0, 11 * S)
    assert (h["status"], h["failing_streak"]) == (UNHEALTHY, 1)
    healthy = apply_result(None, probe, _result(0), 0, 1 * S)
    assert apply_result(healthy, probe, _result(1), 0, 2 * S)["status"] == UNHEALTHY   # counts once healthy


def test_probe_forms_defaults_and_merge() -> None:
    assert Probe.from_config({"Test": ["CMD-SHELL", "curl -f x || exit 1"]}) == Probe(
        ("/bin/sh", "-c", "curl -f x || exit 1"), 30 * S, 30 * S, 0, 5 * S, 3)
    assert Probe.from_config({"Test": ["CMD", "/bin/check", "-v"], "Interval": S, "Retries": 5}) == Probe(
        ("/bin/check", "-v"), S, 30 * S, 0, 5 * S, 5)
    for none in (None, {}, {"Test": ["NONE"]}, {"Test": []}, {"Test": ["CMD"]}):
        assert Probe.from_config(none) is None
    assert health_at_start({"Test": ["NONE"]}, None) is None
    image = Healthcheck(("CMD", "true"), interval=2 * S, retries=4)
    assert merge_healthcheck(None, image) == {"Test": ["CMD", "true"], "Interval": 2 * S, "Retries": 4}
    assert merge_healthcheck({"Test": [], "Interval": S}, image) == {"Test": ["CMD", "true"], "Interval": S,
                                                                      "Retries": 4}
    assert merge_healthcheck({"Test": ["NONE"]}, image) == {"Test": ["NONE"], "Interval": 2 * S, "Retries": 4}
    assert [go_duration(v) for v in (500 * MS, S, 90 * S, 1500 * MS, 3 * 3600 * S)] == [
        "500ms", "1s", "1m30s", "1.5s", "3h0m0s"]


def test_bad_healthchecks_get_dockers_messages() -> None:
    for hc, text in (({"Test": ["CMD", "x"], "Interval": 10}, "Interval in Healthcheck cannot be less than 1ms"),
                     ({"Test": ["CMD", "x"], "Timeout": 999}, "Timeout in Healthcheck cannot be less than 1ms"),
                     ({"Test": ["CMD", "x"], "StartPeriod": 1}, "StartPeriod in Healthcheck cannot be less than 1ms"),
                     ({"Test": ["CMD", "x"], "Retries": -1}, "Retries in Healthcheck cannot be negative"),
                     ({"Test": ["SHELL", "x"]}, "unknown healthcheck type"),
                     ({"Test": "CMD x"}, "Test must be a list"),
                     ({"Test": ["CMD", "x"], "Interval": "1s"}, "must be an integer")):
        with pytest.raises(InvalidArgument, match=text):
            validate_healthcheck(hc)
    validate_healthcheck({"Test": ["CMD", "x"], "Interval": MS, "Retries": 0})


# -- through berthd ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def _health(b: PrivateBerthd, name: str) -> dict[str, Any] | None:
    state: dict[str, Any] = json.loads(b.docker("inspect", name).stdout)[0]["State"]
    return state.get("Health")


def _until(what: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds}s")
        time.sleep(0.1)


def _status(b: PrivateBerthd, name: str) -> str:
    h = _health(b, name)
    return str(h["Status"]) if h else "none"


def _ps(b: PrivateBerthd, *args: str) -> str:
    return b.docker("ps", "--format", "{{.Names}} {{.Status}}", *args).stdout.decode()


@pytest.mark.root
@pytest.mark.slow
def test_healthy_then_unhealthy_with_events_ps_and_filter(b: PrivateBerthd) -> None:
    t0 = time.time()
    b.docker("run", "-d", "--name", "hok", "--health-cmd", "cat /tmp/ok", "--health-interval", "200ms",
             "--health-retries", "2", "busybox", "sh", "-c", "echo fine > /tmp/ok; exec sleep 1000")
    _until(lambda: _status(b, "hok") == "healthy")
    assert "hok Up " in _ps(b) and "(healthy)" in _ps(b, "--filter", "name=hok")
    assert "hok" in _ps(b, "--filter", "health=healthy") and "hok" not in _ps(b, "--filter", "health=unhealthy")
    h = _health(b, "hok")
    assert h is not None and h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    assert h["Log"][-1]["Output"] == "fine\n" and h["Log"][-1]["Start"] < h["Log"][-1]["End"]
    b.docker("exec", "hok", "rm", "/tmp/ok")
    _until(lambda: _status(b, "hok") == "unhealthy")
    h = _health(b, "hok")
    assert h is not None and h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
    assert "No such file" in h["Log"][-1]["Output"] and len(h["Log"]) <= 5
    assert "(unhealthy)" in _ps(b, "--filter", "name=hok") and "hok" in _ps(b, "--filter", "health=unhealthy")
    out = b.docker("events", "--since", f"{t0:.3f}", "--until", f"{time.time():.3f}", "--filter", "container=hok",
                   "--filter", "event=health_status", "--format", "{{.Action}}").stdout.decode()
    assert out.splitlines() == ["health_status: healthy", "health_status: unhealthy"]   # on changes only
    execs = b.docker("events", "--since", f"{t0:.3f}", "--until", f"{time.time():.3f}", "--filter",
                     "container=hok", "--filter", "event=exec_start", "--format", "{{.Action}}").stdout.decode()
    assert execs.splitlines()[0] == "exec_start: /bin/sh -c cat /tmp/ok"
    first = b.docker("events", "--since", f"{t0:.3f}", "--until", f"{time.time():.3f}", "--filter",
                     "container=hok", "--filter", "event=exec_die", "--format",
                     "{{.Actor.Attributes.execID}}").stdout.decode().split()[0]
    status, _ = b.api("GET", f"/v1.44/exec/{first}/json")
    assert status == 404          # a finished probe's exec record is not kept (one per probe would pile up)
    b.docker("stop", "-t", "0", "hok")
    assert _status(b, "hok") == "unhealthy"          # Docker's: a stopped container's probe monitor is gone
    b.docker("rm", "hok")


@pytest.mark.root
def test_starting_until_the_first_probe_and_no_health_without_a_check(b: PrivateBerthd) -> None:
    b.docker("run", "-d", "--name", "hslow", "--health-cmd", "true", "--health-interval", "1h", "busybox",
             "sleep", "1000")
    b.docker("run", "-d", "--name", "hnone", "busybox", "sleep", "1000")
    assert _status(b, "hslow") == "starting" and _health(b, "hnone") is None
    assert "(health: starting)" in _ps(b, "--filter", "name=hslow")
    assert "hslow" in _ps(b, "--filter", "health=starting") and "hnone" in _ps(b, "--filter", "health=none")
    assert "hslow" not in _ps(b, "--filter", "health=none")
    proc = b.docker("ps", "--filter", "health=sick", check=False)
    assert proc.returncode != 0 and b"Unrecognised filter value for health: sick" in proc.stderr
    b.docker("rm", "-f", "hslow", "hnone")


@pytest.mark.root
@pytest.mark.slow
def test_a_probe_past_its_timeout_is_killed_and_counts_as_a_failure(b: PrivateBerthd) -> None:
    b.docker("run", "-d", "--name", "hhang", "--health-cmd", "sleep 30", "--health-interval", "200ms",
             "--health-timeout", "500ms", "--health-retries", "1", "busybox", "sleep", "1000")
    _until(lambda: _status(b, "hhang") == "unhealthy")
    h = _health(b, "hhang")
    assert h is not None
    entry = h["Log"][0]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (500ms)")
    time.sleep(0.3)
    top = b.docker("top", "hhang").stdout.decode()
    assert top.count("sleep 30") <= 1      # the timed-out probes were killed (at most the one running now)
    b.docker("rm", "-f", "hhang")


@pytest.mark.root
@pytest.mark.slow
def test_a_probe_command_that_does_not_exist(b: PrivateBerthd) -> None:
    body = {"Image": "busybox", "Cmd": ["sleep", "1000"],
            "Healthcheck": {"Test": ["CMD", "/no/such/probe"], "Interval": 200 * MS, "Retries": 1}}
    status, raw = b.api("POST", "/v1.44/containers/create?name=hmissing", json.dumps(body).encode())
    assert status == 201, raw
    b.docker("start", "hmissing")
    b.docker("run", "-d", "--name", "hshell", "--health-cmd", "nosuchcmd", "--health-interval", "200ms",
             "--health-retries", "1", "busybox", "sleep", "1000")
    _until(lambda: _status(b, "hmissing") == "unhealthy" and _status(b, "hshell") == "unhealthy")
    missing = _health(b, "hmissing")
    assert missing is not None and missing["Log"][0]["ExitCode"] == 126
    shell = _health(b, "hshell")
    assert shell is not None and shell["Log"][0]["ExitCode"] == 127 and "not found" in shell["Log"][0]["Output"]
    assert json.loads(b.docker("inspect", "hmissing").stdout)[0]["State"]["Running"]   # the container runs on
    b.docker("rm", "-f", "hmissing", "hshell")


@pytest.mark.root
def test_bad_healthcheck_values_are_refused_at_create(b: PrivateBerthd) -> None:
    body = {"Image": "busybox", "Cmd": ["true"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": 100}}
    status, raw = b.api("POST", "/v1.44/containers/create", json.dumps(body).encode())
    assert status == 400 and json.loads(raw)["message"] == "Interval in Healthcheck cannot be less than 1ms"
    body["Healthcheck"] = {"Test": ["CMD", "true"], "Retries": -2}
    status, raw = b.api("POST", "/v1.44/containers/create", json.dumps(body).encode())
    assert status == 400 and json.loads(raw)["message"] == "Retries in Healthcheck cannot be negative"
    assert b.docker("ps", "-aq").stdout == b""


@pytest.mark.root
@pytest.mark.slow
def test_the_images_healthcheck_and_no_healthcheck(b: PrivateBerthd) -> None:
    b.docker("run", "--name", "hbase", "busybox", "true")
    b.docker("commit", "--change", "HEALTHCHECK --interval=200ms --retries=1 CMD test -e /etc/passwd",
             "hbase", "berth-health:1")
    b.docker("run", "-d", "--name", "himg", "berth-health:1", "sleep", "1000")
    b.docker("run", "-d", "--name", "hoff", "--no-healthcheck", "berth-health:1", "sleep", "1000")
    _until(lambda: _status(b, "himg") == "healthy")
    assert _health(b, "hoff") is None
    cfg = json.loads(b.docker("inspect", "hoff").stdout)[0]["Config"]["Healthcheck"]
    assert cfg["Test"] == ["NONE"]
    b.docker("rm", "-f", "himg", "hoff", "hbase")
    b.docker("rmi", "berth-health:1")


@pytest.mark.root
@pytest.mark.slow
def test_health_survives_a_kill_9_of_berthd_and_probing_resumes() -> None:
    with PrivateBerthd() as d:
        status, body = d.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        d.docker("run", "-d", "--name", "hkeep", "--health-cmd", "cat /tmp/ok", "--health-interval", "300ms",
                 "busybox", "sh", "-c", "echo up > /tmp/ok; exec sleep 1000")
        _until(lambda: _status(d, "hkeep") == "healthy")
        d.kill()
        d.start()
        h = _health(d, "hkeep")
        assert h is not None and h["Status"] == "healthy"
        last = h["Log"][-1]["Start"]
        _until(lambda: (_health(d, "hkeep") or {})["Log"][-1]["Start"] > last)
        d.docker("exec", "hkeep", "rm", "/tmp/ok")
        _until(lambda: _status(d, "hkeep") == "unhealthy")
        d.docker("rm", "-f", "hkeep")


@pytest.mark.root
@pytest.mark.slow
def test_probing_pauses_with_the_container_and_goes_on_after_unpause(b: PrivateBerthd) -> None:
    b.docker("run", "-d", "--name", "hpause", "--health-cmd", "true", "--health-interval", "200ms", "busybox",
             "sleep", "1000")
    _until(lambda: _status(b, "hpause") == "healthy")
    b.docker("pause", "hpause")
    time.sleep(0.5)
    h = _health(b, "hpause")
    assert h is not None
    frozen = h["Log"][-1]["Start"]
    time.sleep(0.8)
    h = _health(b, "hpause")
    assert h is not None and h["Log"][-1]["Start"] == frozen      # no probes into a frozen container
    b.docker("unpause", "hpause")
    _until(lambda: (_health(b, "hpause") or {})["Log"][-1]["Start"] > frozen, 5)
    assert _status(b, "hpause") == "healthy"
    b.docker("rm", "-f", "hpause")
