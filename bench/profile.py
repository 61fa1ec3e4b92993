"""Where berthd spends a load or a save: py-spy samples of every thread of a private berthd while the berth CLI
loads (or saves) the bench image, summed per function. `python -m bench.profile [load|save] [--rounds N]`.

py-spy is not a dependency of berth: install it into the venv for profiling (`.venv/bin/pip install py-spy`).
It records "raw" (collapsed) stacks, one line per distinct stack, root first: `frame;frame;...;leaf COUNT` where a
frame reads `function (file:line)`. `summarize` turns them into self and inclusive sample counts per function.

May import: the standard library, bench.*, tests.berthd, tests.peers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.berthd import BERTH, PrivateBerthd

from bench.image import CACHE, bench_image

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True, slots=True)
class FunctionCost:
    function: str  # "name (path)" without the line number, so a function's lines add up
    self_samples: int
    inclusive_samples: int


@dataclass(frozen=True, slots=True)
class Profile:
    total: int  # samples
    functions: tuple[FunctionCost, ...]

    def top(self, n: int, key: str = "self") -> list[FunctionCost]:
        attr = "self_samples" if key == "self" else "inclusive_samples"
        return sorted(self.functions, key=lambda f: (-getattr(f, attr), f.function))[:n]

    def format(self, n: int = 25) -> str:
        if not self.total:
            return "no samples"
        lines = [f"{self.total} samples"]
        for key in ("self", "inclusive"):
            lines.append(f"  top {n} by {key} time:")
            for f in self.top(n, key):
                value = f.self_samples if key == "self" else f.inclusive_samples
                lines.append(f"    {100 * value / self.total:5.1f}%  {f.function}")
        return "\n".join(lines)


def frame_function(frame: str, root: str = "") -> str:
    """`load (/x/src/berth/images/service.py:97)` -> `load (src/berth/images/service.py)`."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    if root and path.startswith(root.rstrip("/") + "/"):
        path = path[len(root.rstrip("/")) + 1:]
    return f"{m.group('func')} ({path})"


def summarize(lines: Iterable[str], root: str = "") -> Profile:
    """Self and inclusive samples per function from py-spy's raw output. Malformed lines are skipped."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_function(f, root) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for function in set(frames):  # recursion counts once per sample
            inclusive[function] += count
    return Profile(total, tuple(FunctionCost(f, self_counts[f], inclusive[f]) for f in inclusive))


def record(pid: int, out: Path, rate: int = 200, idle: bool = False) -> subprocess.Popen[bytes]:
    """Start py-spy sampling every thread of pid; stop it with `stop_recording`."""
    if not os.access(PY_SPY, os.X_OK):
        raise RuntimeError(f"{PY_SPY} is missing: .venv/bin/pip install py-spy (for profiling only)")
    argv = [PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--output", str(out), "--rate", str(rate),
            "--nonblocking"]
    if idle:
        argv.append("--idle")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(0.5)  # py-spy attaches before the work starts
    if proc.poll() is not None:
        raise RuntimeError(f"py-spy exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
    return proc


def stop_recording(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("py-spy did not stop on SIGINT") from None


def profile_berthd(scenario: str, rounds: int, cache: Path, idle: bool) -> tuple[Profile, list[float]]:
    image = bench_image(cache)
    ref = image.refs[0]
    work = Path(tempfile.mkdtemp(prefix="berth-profile-", dir=cache))
    walls: list[float] = []
    try:
        with PrivateBerthd(base_dir=work) as b:
            assert b.proc is not None
            if scenario == "save":
                b.berth("load", "-i", str(image.tar))
            raw = work / "pyspy.txt"
            spy = record(b.proc.pid, raw, idle=idle)
            try:
                for _ in range(rounds):
                    args: tuple[str, ...]
                    if scenario == "load":
                        b.berth("rmi", ref, check=False)
                        args = ("load", "-i", str(image.tar))
                    else:
                        (work / "out.tar").unlink(missing_ok=True)
                        args = ("save", "-o", str(work / "out.tar"), ref)
                    os.sync()
                    start = time.perf_counter()
                    b.berth(*args)
                    walls.append(time.perf_counter() - start)
            finally:
                stop_recording(spy)
            with open(raw) as f:
                return summarize(f, root=str(Path(__file__).resolve().parent.parent)), walls
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("load", "save"), nargs="?", default="load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true", help="count threads waiting (off-CPU) too")
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("berthd needs root", file=sys.stderr)
        return 1
    profile, walls = profile_berthd(args.scenario, args.rounds, args.cache, args.idle)
    print(f"berth {args.scenario} via {BERTH}: " + ", ".join(f"{w:.2f}s" for w in walls))
    print(profile.format(args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
