"""Run one scenario under several engines in alternation and compare them by the ratio of their medians.

A `Scenario` has `Contender`s (e.g. "berth" and "docker", plus floors such as "sha256sum"). `run_scenario` runs
warm-up rounds, then N rounds, each round running every contender once in the scenario's order (A B A B ..., or rotated every round), with
each contender's untimed `setup` before and `teardown` after its timed action. A timed action is an argv (timed
from spawn to reap with `time.perf_counter`, its CPU time and peak RSS taken from `os.wait4`) or a Python callable.
If a contender names a daemon pid, the daemon's CPU time during the action is recorded too: for `docker load` the
work is in the daemon, not the CLI.

`Result.ratios` holds median(contender) / median(baseline) for every other contender; `write_result` stores the
whole result as JSON under bench/results/ (git-ignored). Wall time is what the targets are about; the rest helps
explain it.

May import: the standard library only (the harness must not depend on the engine it measures).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

RESULTS_DIR = Path(__file__).resolve().parent / "results"

Action = Sequence[str] | Callable[[], object]


class BenchError(RuntimeError):
    """A timed action or its setup failed; the numbers of that run are worthless."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One engine (or floor) in a scenario.

    `action` is timed; `setup` runs (untimed) before every timed action, `teardown` after it. `client` records
    what drove the engine (e.g. "docker CLI 28.2.2"). `stdout` is where an argv action's output goes (default
    /dev/null). `daemon_pid`, if given, returns the pid whose CPU time is sampled around the action.
    """

    name: str
    action: Action
    setup: Callable[[], object] | None = None
    teardown: Callable[[], object] | None = None
    client: str = ""
    stdout: Path | None = None
    env: Mapping[str, str] | None = None
    daemon_pid: Callable[[], int | None] | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    contenders: tuple[Contender, ...]
    rounds: int = 5
    warmup: int = 1
    baseline: str = "docker"
    # os.sync() before each timed action (untimed), so one round's dirty pages are not written back in the next.
    sync: bool = True
    # Seconds to wait after setup and sync before timing: lets deferred work of a big delete settle.
    settle: float = 0.0
    # Rotate the order every round (A B C, B C A, C A B, ...), so each contender takes every position in turn:
    # one that always ran first in a round (right after the last one's teardown, e.g. a big delete) would pay
    # for it every time. Plain A B A B otherwise.
    rotate: bool = False

    def __post_init__(self) -> None:
        names = [c.name for c in self.contenders]
        if not names:
            raise ValueError(f"scenario {self.name!r} has no contenders")
        if len(set(names)) != len(names):
            raise ValueError(f"scenario {self.name!r} names a contender twice: {names}")
        if self.rounds < 1 or self.warmup < 0:
            raise ValueError(f"scenario {self.name!r}: rounds must be >= 1 and warmup >= 0")


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed action. CPU figures are None when they could not be measured (a callable, no daemon pid)."""

    round: int  # negative for warm-up rounds
    wall: float
    user: float | None = None
    sys: float | None = None
    max_rss_kib: int | None = None
    daemon_cpu: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"round": self.round, "wall": self.wall, "user": self.user, "sys": self.sys,
                "max_rss_kib": self.max_rss_kib, "daemon_cpu": self.daemon_cpu}


@dataclass(frozen=True, slots=True)
class Stats:
    n: int
    min: float
    median: float
    max: float
    mean: float
    stdev: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no samples to summarise")
        stdev = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(len(values), min(values), statistics.median(values), max(values), statistics.fmean(values), stdev)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "min": self.min, "median": self.median, "max": self.max, "mean": self.mean,
                "stdev": self.stdev}


@dataclass(frozen=True, slots=True)
class EngineResult:
    name: str
    client: str
    samples: tuple[Sample, ...]  # warm-up samples included (negative rounds); stats exclude them

    @property
    def measured(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.round >= 0)

    @property
    def wall(self) -> Stats:
        return Stats.of([s.wall for s in self.measured])

    def daemon_cpu(self) -> Stats | None:
        values = [s.daemon_cpu for s in self.measured if s.daemon_cpu is not None]
        return Stats.of(values) if values else None

    def client_cpu(self) -> Stats | None:
        """user+sys CPU of the timed command itself (the CLI), for argv actions."""
        values = [s.user + s.sys for s in self.measured if s.user is not None and s.sys is not None]
        return Stats.of(values) if values else None

    def to_json(self) -> dict[str, Any]:
        cpu, client_cpu = self.daemon_cpu(), self.client_cpu()
        return {"name": self.name, "client": self.client, "wall": self.wall.to_json(),
                "daemon_cpu": cpu.to_json() if cpu else None,
                "client_cpu": client_cpu.to_json() if client_cpu else None,
                "samples": [s.to_json() for s in self.samples]}


@dataclass(frozen=True, slots=True)
class Machine:
    nproc: int
    mem_total_mib: int
    cpu_model: str
    kernel: str
    python: str

    @classmethod
    def current(cls) -> Machine:
        return cls(os.cpu_count() or 0, _mem_total_mib(), _cpu_model(), platform.release(),
                   platform.python_version())

    def to_json(self) -> dict[str, Any]:
        return {"nproc": self.nproc, "mem_total_mib": self.mem_total_mib, "cpu_model": self.cpu_model,
                "kernel": self.kernel, "python": self.python}

    def describe(self) -> str:
        return f"{self.nproc} CPUs ({self.cpu_model}), {self.mem_total_mib} MiB, Linux {self.kernel}"


@dataclass(frozen=True, slots=True)
class Result:
    scenario: str
    description: str
    started: str  # ISO 8601 UTC
    machine: Machine
    baseline: str
    order: tuple[str, ...]  # every timed action as it ran, "round:name", warm-ups included
    engines: tuple[EngineResult, ...]
    notes: Mapping[str, Any] = field(default_factory=dict)

    def engine(self, name: str) -> EngineResult:
        for e in self.engines:
            if e.name == name:
                return e
        raise KeyError(f"no contender {name!r} in scenario {self.scenario!r}")

    @property
    def ratios(self) -> dict[str, float]:
        """median(name) / median(baseline) for every contender but the baseline; empty without a baseline."""
        if self.baseline not in {e.name for e in self.engines}:
            return {}
        base = self.engine(self.baseline).wall.median
        return {f"{e.name}/{self.baseline}": ratio_of_medians(e.wall.median, base)
                for e in self.engines if e.name != self.baseline}

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "description": self.description, "started": self.started,
                "machine": self.machine.to_json(), "baseline": self.baseline, "ratios": self.ratios,
                "order": list(self.order), "engines": [e.to_json() for e in self.engines], "notes": dict(self.notes)}


def ratio_of_medians(median: float, baseline_median: float) -> float:
    if baseline_median <= 0:
        raise ValueError(f"baseline median must be positive, got {baseline_median}")
    return median / baseline_median


def schedule(names: Sequence[str], rounds: int, warmup: int = 0, rotate: bool = False) -> list[tuple[int, str]]:
    """The order of timed actions: warm-up rounds (numbered -warmup..-1), then rounds 0..rounds-1, each round
    running every name once, so engines alternate and share any drift evenly. Without rotate every round runs
    the names in the given order (A B A B); with it, round r starts r places further (A B C, B C A, ...), counting
    warm-ups, so the measured rounds start at the given order."""
    out = []
    for r in range(-warmup, rounds):
        shift = r % len(names) if rotate else 0
        out += [(r, name) for name in [*names[shift:], *names[:shift]]]
    return out


# ---- measuring ---------------------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """utime+stime of a process and its reaped children, from /proc/<pid>/stat; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / _CLK_TCK


def _time_argv(argv: Sequence[str], stdout: Path | None, env: Mapping[str, str] | None,
               round_: int) -> Sample:
    with tempfile.TemporaryFile() as err, open(stdout or os.devnull, "wb") as out:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=dict(env) if env is not None else None)
        except OSError as exc:
            raise BenchError(f"cannot start {argv[0]}: {exc}") from exc
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
        if proc.returncode != 0:
            err.seek(0)
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: "
                             f"{err.read().decode(errors='replace').strip()[-2000:]}")
    return Sample(round_, wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)


def measure(contender: Contender, round_: int, sync: bool = True, settle: float = 0.0) -> Sample:
    """setup, (sync, settle), timed action, teardown: one sample."""
    if contender.setup is not None:
        contender.setup()
    if sync:
        os.sync()
    if settle > 0:
        time.sleep(settle)
    pid = contender.daemon_pid() if contender.daemon_pid is not None else None
    cpu_before = process_cpu_seconds(pid) if pid is not None else None
    if callable(contender.action):
        start = time.perf_counter()
        contender.action()
        sample = Sample(round_, time.perf_counter() - start)
    else:
        sample = _time_argv(contender.action, contender.stdout, contender.env, round_)
    if pid is not None and cpu_before is not None:
        cpu_after = process_cpu_seconds(pid)
        if cpu_after is not None:
            sample = Sample(sample.round, sample.wall, sample.user, sample.sys, sample.max_rss_kib,
                            cpu_after - cpu_before)
    if contender.teardown is not None:
        contender.teardown()
    return sample


def run_scenario(scenario: Scenario, log: TextIO | None = None,
                 notes: Mapping[str, Any] | None = None) -> Result:
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    by_name = {c.name: c for c in scenario.contenders}
    samples: dict[str, list[Sample]] = {c.name: [] for c in scenario.contenders}
    order: list[str] = []
    for round_, name in schedule(list(by_name), scenario.rounds, scenario.warmup, scenario.rotate):
        sample = measure(by_name[name], round_, scenario.sync, scenario.settle)
        samples[name].append(sample)
        order.append(f"{round_}:{name}")
        if log is not None:
            tag = "warm-up" if round_ < 0 else f"round {round_ + 1}/{scenario.rounds}"
            print(f"  {scenario.name}: {name:<12} {tag:<12} {sample.wall:9.3f} s", file=log, flush=True)
    engines = tuple(EngineResult(c.name, c.client, tuple(samples[c.name])) for c in scenario.contenders)
    return Result(scenario.name, scenario.description, started, Machine.current(), scenario.baseline,
                  tuple(order), engines, dict(notes or {}))


# ---- reporting ---------------------------------------------------------------------------------------------

def format_table(result: Result) -> str:
    lines = [f"{result.scenario}: {result.description}",
             f"  {'engine':<16} {'min':>9} {'median':>9} {'max':>9}  {'cmd cpu':>9} {'daemon cpu':>10}  client"]
    for e in result.engines:
        w = e.wall
        cpu, client_cpu = e.daemon_cpu(), e.client_cpu()
        cpu_text = f"{cpu.median:9.3f}s" if cpu else f"{'-':>10}"
        client_text = f"{client_cpu.median:8.3f}s" if client_cpu else f"{'-':>9}"
        lines.append(f"  {e.name:<16} {w.min:8.3f}s {w.median:8.3f}s {w.max:8.3f}s  {client_text} {cpu_text}"
                     f"  {e.client}")
    for label, value in result.ratios.items():
        lines.append(f"  ratio of medians {label}: {value:.2f}")
    return "\n".join(lines)


def write_result(result: Result, directory: Path = RESULTS_DIR) -> Path:
    """Write the result as JSON to <directory>/<scenario>-<UTC timestamp>.json (atomically) and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result.started.replace("-", "").replace(":", "").replace("+0000", "Z")
    path = directory / f"{result.scenario}-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{result.scenario}-{stamp}-{n}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _mem_total_mib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
