"""Healthchecks: the image's HEALTHCHECK or the container's `--health-*`, probed by berthd through the exec
machinery (berth.engine.execs) on their schedule while the container runs, with Docker's semantics
(daemon/health.go): the first probe one interval after the start; a probe's output (stdout and stderr, 4 KiB at
most) and exit code kept in a log of the last 5 results; healthy on an exit code 0, unhealthy after `retries`
failures in a row, failures during the start period not counted while the container is still starting; a probe
that outlives its timeout is killed and counts as a failure (exit code -1); a `health_status: <status>` event
when the status changes; "unhealthy" once the container stops.

The health record lives in the container's state (state.json), so it survives a daemon restart; `resume()` picks
up probing for running containers after one.

May import: berth.engine.containers, berth.engine.events, berth.engine.execs, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from berth.engine.containers import Container, Status
from berth.engine.events import Event, EventService, exec_action, rfc3339_to_ns
from berth.engine.execs import ExecConfig, ExecService
from berth.errors import BerthError, InvalidArgument

if TYPE_CHECKING:
    from berth.engine.lifecycle import ContainerService

log = logging.getLogger("berthd")

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000          # Docker's containertypes.MinimumDuration: 1ms
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass(frozen=True, slots=True)
class Probe:
    """A healthcheck ready to run: the command and its schedule in nanoseconds."""
    argv: tuple[str, ...]
    interval: int = DEFAULT_INTERVAL
    timeout: int = DEFAULT_TIMEOUT
    start_period: int = 0
    start_interval: int = DEFAULT_START_INTERVAL
    retries: int = DEFAULT_RETRIES

    @classmethod
    def from_config(cls, hc: Mapping[str, Any] | None) -> Probe | None:
        """None when there is no healthcheck to run (none given, `NONE`, or an empty test)."""
        if not hc:
            return None
        test = [str(t) for t in hc.get("Test") or ()]
        if not test or test[0] == "NONE":
            return None
        if test[0] == "CMD":
            argv = tuple(test[1:])
        elif test[0] == "CMD-SHELL":
            argv = ("/bin/sh", "-c", " ".join(test[1:]))
        else:
            return None
        if not argv:
            return None
        return cls(argv, int(hc.get("Interval") or 0) or DEFAULT_INTERVAL,
                   int(hc.get("Timeout") or 0) or DEFAULT_TIMEOUT, int(hc.get("StartPeriod") or 0),
                   int(hc.get("StartInterval") or 0) or DEFAULT_START_INTERVAL,
                   int(hc.get("Retries") or 0) or DEFAULT_RETRIES)


def validate_healthcheck(hc: Mapping[str, Any] | None) -> None:
    """Docker's checks at create (its 400 texts)."""
    if not hc:
        return
    if not isinstance(hc, Mapping):
        raise InvalidArgument("Healthcheck must be an object")
    test = hc.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidArgument("Healthcheck.Test must be a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgument(f"unknown healthcheck type {test[0]!r}: use CMD, CMD-SHELL or NONE")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        value = hc.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"Healthcheck.{key} must be an integer (nanoseconds), not {value!r}")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = int(hc.get(key) or 0)
        if value != 0 and value < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if int(hc.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def merge_healthcheck(given: Mapping[str, Any] | None, image: Any) -> Mapping[str, Any] | None:
    """Docker's merge of the container's healthcheck with the image's: an empty Test or a zero field takes the
    image's value. `image` is the image config's Healthcheck (berth.oci.config) or None."""
    base = image.to_json() if image is not None else None
    if not given:
        return base
    if not base:
        return dict(given)
    out = dict(given)
    if not out.get("Test"):
        out["Test"] = base.get("Test")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not out.get(key) and base.get(key):
            out[key] = base[key]
    return out


def health_at_start(hc: Mapping[str, Any] | None, health: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The health record a (re)started container begins with: starting, no failures, the old log kept."""
    if Probe.from_config(hc) is None:
        return None
    return {"status": STARTING, "failing_streak": 0, "log": list((health or {}).get("log") or [])}


def health_at_stop(health: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Docker marks a stopped container's health unhealthy (its probe monitor has stopped)."""
    return {**health, "status": UNHEALTHY} if health else health


def apply_result(health: Mapping[str, Any] | None, probe: Probe, result: Mapping[str, Any], started_at_ns: int,
                 probe_start_ns: int) -> dict[str, Any]:
    """Docker's handleProbeResult, pure: the new health record after one probe."""
    old = dict(health or {"status": STARTING, "failing_streak": 0, "log": []})
    log_ = [*list(old.get("log") or []), dict(result)][-MAX_LOG_ENTRIES:]
    status, streak = str(old.get("status") or STARTING), int(old.get("failing_streak") or 0)
    if result["exit_code"] == 0:
        status, streak = HEALTHY, 0
    elif not (status == STARTING and probe_start_ns - started_at_ns < probe.start_period):
        streak += 1
        if streak >= probe.retries:
            status = UNHEALTHY
    return {"status": status, "failing_streak": streak, "log": log_}


def go_duration(ns: int) -> str:
    """Go's time.Duration.String() for the durations a healthcheck uses (as in "exceeded timeout (1s)")."""
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{_trim(ns / 1000)}µs"
    if ns < SECOND:
        return f"{_trim(ns / 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    seconds = _trim(rest / SECOND)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def _rfc3339(t_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ns // SECOND)) + f".{t_ns % SECOND:09d}Z"


class HealthService:
    """One probing thread per running container that has a healthcheck, started and stopped by the container's
    start/die/destroy events."""

    def __init__(self, containers: ContainerService, execs: ExecService, events: EventService,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._containers, self._execs, self._events = containers, execs, events
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._runners: dict[str, threading.Event] = {}
        self._closing = False
        _, self._unsubscribe = events.subscribe(None, None, self._on_event)

    def _on_event(self, ev: Event) -> None:
        """Runs on the emitting thread: only starts or stops a runner, never blocks."""
        if ev.type != "container":
            return
        if ev.action == "start":
            self.begin(ev.actor_id)
        elif ev.action in ("die", "destroy"):
            self.end(ev.actor_id)

    def resume(self) -> list[str]:
        """After a daemon restart: probe the running containers again (their health record is kept)."""
        notes = []
        for c in self._containers.store.all():
            if c.state.status in (Status.RUNNING, Status.PAUSED) and Probe.from_config(c.config.healthcheck):
                self.begin(c.id)
                notes.append(f"container {c.short_id}: healthcheck resumed")
        return notes

    def begin(self, container_id: str) -> None:
        with self._lock:
            if self._closing:
                return
            previous = self._runners.pop(container_id, None)
            if previous is not None:
                previous.set()
            stop = self._runners[container_id] = threading.Event()
        threading.Thread(target=self._run, args=(container_id, stop), name=f"health-{container_id[:12]}",
                         daemon=True).start()

    def end(self, container_id: str) -> None:
        with self._lock:
            stop = self._runners.pop(container_id, None)
        if stop is not None:
            stop.set()

    def shutdown(self) -> None:
        self._unsubscribe()
        with self._lock:
            self._closing = True
            runners, self._runners = list(self._runners.values()), {}
        for stop in runners:
            stop.set()

    def running(self) -> int:
        with self._lock:
            return len(self._runners)

    def _run(self, container_id: str, stop: threading.Event) -> None:
        try:
            c = self._containers.store.load(container_id)
        except BerthError:
            return
        probe = Probe.from_config(c.config.healthcheck)
        if probe is None:
            return
        started = rfc3339_to_ns(c.state.started_at) or self._clock_ns()
        while True:
            in_start = self._clock_ns() - started < probe.start_period
            health = c.state.health or {}
            wait_ns = probe.start_interval if in_start and health.get("status") == STARTING else probe.interval
            if stop.wait(wait_ns / SECOND):
                return
            try:
                c = self._containers.store.load(container_id)
            except BerthError:
                return
            if c.state.status is Status.PAUSED:
                continue
            if c.state.status is not Status.RUNNING:
                return
            probe_start = self._clock_ns()
            result = self.run_probe(c, probe, stop)
            if stop.is_set():
                return          # cancelled while probing (the container stopped): the result is not kept
            updated = self._containers.update_health(container_id, functools.partial(
                _next_health, probe=probe, result=result, started=started, probe_start=probe_start))
            if updated is None:
                return
            before = str((c.state.health or {}).get("status") or "")
            after = str((updated.state.health or {}).get("status") or "")
            if after != before:
                self._events.container(updated, f"health_status: {after}")
            c = updated

    def _exec_died(self, c: Container, exec_id: str, code: int) -> None:
        self._events.container(c, "exec_die", {"execID": exec_id, "exitCode": str(code)})

    def run_probe(self, c: Container, probe: Probe, stop: threading.Event | None = None) -> dict[str, Any]:
        """One probe through an exec: {start, end, exit_code, output} (RFC 3339 times, Docker's Log entry)."""
        start = self._clock_ns()
        try:
            record = self._execs.create(c, ExecConfig(c.id, probe.argv))
        except BerthError as exc:
            return {"start": _rfc3339(start), "end": _rfc3339(self._clock_ns()), "exit_code": -1, "output": str(exc)}
        self._events.container(c, exec_action("exec_create", probe.argv), {"execID": record.id})
        record.on_exit = functools.partial(self._exec_died, c, record.id)
        try:
            session = self._execs.start(record, c)
        except (BerthError, OSError) as exc:
            self._execs.forget(record.id)
            return {"start": _rfc3339(start), "end": _rfc3339(self._clock_ns()), "exit_code": -1, "output": str(exc)}
        self._events.container(c, exec_action("exec_start", probe.argv), {"execID": record.id})
        with contextlib.suppress(OSError):
            os.close(session.stdin)
        output, timed_out = _read_outputs([fd for _, fd in session.outputs], start + probe.timeout, self._clock_ns,
                                          stop)
        if timed_out:
            self._execs.kill(record)
        record.done.wait(10)
        self._execs.forget(record.id)
        end = self._clock_ns()
        if timed_out:
            return {"start": _rfc3339(start), "end": _rfc3339(end), "exit_code": -1,
                    "output": f"Health check exceeded timeout ({go_duration(probe.timeout)})"}
        code = record.exit_code if record.exit_code is not None else -1
        return {"start": _rfc3339(start), "end": _rfc3339(end), "exit_code": code,
                "output": output.decode(errors="replace")}


def _next_health(c: Container, probe: Probe, result: Mapping[str, Any], started: int,
                 probe_start: int) -> dict[str, Any]:
    return apply_result(c.state.health, probe, result, started, probe_start)


def _read_outputs(fds: list[int], deadline_ns: int, clock_ns: Callable[[], int],
                  stop: threading.Event | None) -> tuple[bytes, bool]:
    """Read the probe's stdout and stderr to their ends, keeping the first 4 KiB; (output, timed out)."""
    kept = bytearray()
    sel = selectors.DefaultSelector()
    try:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        open_fds = set(fds)
        while open_fds:
            left = (deadline_ns - clock_ns()) / SECOND
            if left <= 0 or (stop is not None and stop.is_set()):
                return bytes(kept), True
            for key, _ in sel.select(timeout=min(left, 0.5)):
                fd = int(key.fd)
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    continue
                if len(kept) < MAX_OUTPUT:
                    kept += data[:MAX_OUTPUT - len(kept)]
        return bytes(kept), False
    finally:
        sel.close()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
