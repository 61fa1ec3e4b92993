"""Container scenarios of issue #4, berth vs a real dockerd on this machine, in one run: `python -m bench.containers`.

Both daemons are driven by the same docker CLI (so the client costs the same), with the same busybox image
(imported offline from /bin/busybox into both). Scenarios (engines alternating round by round):
  run       `run --rm busybox true` with the default network (a bridge and a veth for each container).
  run-none  the same with `--network none`.
  cycle     `run -d` of a shell that exits on SIGTERM, `stop`, `rm`: one shell script timed as a whole.
  burst     20 `run -d busybox sleep 60` at once (20 CLI processes in parallel); containers per second is
            20 / the wall time. The containers are removed (untimed) after every round.
Plus memory, not timed: the idle daemon's RSS (berthd vs dockerd + containerd) after the runs, and the per-
container process's RSS (berth's monitor vs containerd-shim-runc-v2) with one `sleep` container running.
Results go to bench/results/.

May import: the standard library, bench.*, tests.peers and tests.berthd (the private daemons). Nothing from berth:
berth is only ever run as a program here.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tests.berthd import PrivateBerthd
from tests.peers import DOCKER_CLI, PrivateDockerd, _empty_docker_config, busybox_rootfs_tar

from bench.harness import Contender, Scenario, format_table, run_scenario, write_result

SCENARIOS = ("run", "run-none", "cycle", "burst", "memory")
BURST = 20
# A PID 1 that exits on SIGTERM (busybox sleep as PID 1 ignores it, and `stop` would wait out its timeout).
TERMINABLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_CONFIG": _empty_docker_config(), "DOCKER_CLI_HINTS": "false"}


class Side:
    """One daemon driven by the docker CLI."""

    def __init__(self, name: str, host: str, pid: Callable[[], int | None], pids: Callable[[], list[int]],
                 shim: str) -> None:
        self.name, self.host, self.pid, self.daemon_pids, self.shim = name, host, pid, pids, shim

    def argv(self, *args: str) -> list[str]:
        return [DOCKER_CLI, "-H", self.host, *args]

    def run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(self.argv(*args), capture_output=True, env=_env())
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)} exited {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode()

    def remove_all(self) -> None:
        ids = self.run("ps", "-aq").split()
        if ids:
            self.run("rm", "-f", *ids, check=False)


def _cycle_script(side: Side) -> list[str]:
    docker, body = shlex.join(side.argv()), shlex.join(TERMINABLE)
    return ["sh", "-ec", f'id=$({docker} run -d busybox {body}); {docker} stop "$id" >/dev/null; '
                         f'{docker} rm "$id" >/dev/null']


def _burst_script(side: Side) -> list[str]:
    docker = shlex.join(side.argv())
    return ["sh", "-ec", f"seq {BURST} | xargs -P {BURST} -I{{}} {docker} run -d busybox sleep 60 >/dev/null"]


def scenarios(sides: Sequence[Side], names: Sequence[str], rounds: int) -> Iterator[Scenario]:
    env = _env()

    def contenders(action: Callable[[Side], Sequence[str]], teardown: bool = False) -> tuple[Contender, ...]:
        return tuple(Contender(s.name, action(s), client="docker CLI", env=env, daemon_pid=s.pid,
                               teardown=s.remove_all if teardown else None) for s in sides)

    if "run" in names:
        yield Scenario("run", "run --rm busybox true (default network)",
                       contenders(lambda s: s.argv("run", "--rm", "busybox", "true")), rounds=rounds, warmup=2)
    if "run-none" in names:
        yield Scenario("run-none", "run --rm --network none busybox true",
                       contenders(lambda s: s.argv("run", "--rm", "--network", "none", "busybox", "true")),
                       rounds=rounds, warmup=2)
    if "cycle" in names:
        yield Scenario("cycle", "run -d (a shell exiting on SIGTERM) + stop + rm",
                       contenders(_cycle_script, teardown=True), rounds=rounds, warmup=1)
    if "burst" in names:
        yield Scenario("burst", f"{BURST} x run -d busybox sleep 60 at once; removed after each round",
                       contenders(_burst_script, teardown=True), rounds=max(3, rounds // 3), warmup=1, settle=1.0)


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pids_of(comm_prefix: str, marker: str) -> list[int]:
    """Processes whose name (/proc/<pid>/comm) starts with comm_prefix and whose command line or open files
    mention marker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if not Path(f"/proc/{entry}/comm").read_text().startswith(comm_prefix):
                continue
            names = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            with contextlib.suppress(OSError):
                names += " ".join(os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd"))
            if marker in names:
                found.append(int(entry))
    return found


def memory(sides: Sequence[Side]) -> list[str]:
    lines = []
    for s in sides:
        s.remove_all()
        time.sleep(1.0)
        idle = sum(rss_kib(p) for p in s.daemon_pids())
        cid = s.run("run", "-d", "busybox", "sleep", "60").strip()
        time.sleep(0.5)
        shims = [rss_kib(p) for p in _pids_of(s.shim, cid)]
        s.run("rm", "-f", cid, check=False)
        lines.append(f"{s.name}: idle daemon RSS {idle / 1024:.1f} MiB; per-container process ({s.shim}) "
                     f"RSS {max(shims, default=0) / 1024:.1f} MiB ({len(shims)} found)")
    return lines


@contextlib.contextmanager
def daemons(base: Path) -> Iterator[list[Side]]:
    rootfs = base / "busybox-rootfs.tar"
    rootfs.write_bytes(busybox_rootfs_tar())
    with PrivateDockerd(base_dir=base, bridge=True) as d, PrivateBerthd(base_dir=base) as b:
        for host in (d.host, b.host):
            subprocess.run([DOCKER_CLI, "-H", host, "import", "-c", 'CMD ["sh"]', str(rootfs), "busybox:latest"],
                           check=True, capture_output=True, env=_env())

        def dockerd_pid() -> int | None:
            with contextlib.suppress(OSError, ValueError):
                return int(d.pidfile.read_text().strip())
            return None

        def dockerd_pids() -> list[int]:
            return [*_pids_of("dockerd", str(d.root)), *_pids_of("containerd", str(d.root))]

        def berthd_pid() -> int | None:
            return b.proc.pid if b.proc is not None else None

        def berthd_pids() -> list[int]:
            pid = berthd_pid()
            return [pid] if pid else []

        yield [Side("berth", b.host, berthd_pid, berthd_pids, "berth-monitor"),
               Side("docker", d.host, dockerd_pid, dockerd_pids, "containerd-shim")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.containers", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--results", type=Path, default=None, help="results dir (default bench/results)")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    # As an installed package has them: without .pyc files (this environment sets PYTHONDONTWRITEBYTECODE) every
    # berthd and CLI start compiles berth again, which costs time and leaves the compiler's garbage in the RSS.
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src" / "berth"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bc-", dir="/tmp") as tmp, daemons(Path(tmp)) as sides:
        for scenario in scenarios(sides, args.scenarios, args.rounds):
            result = run_scenario(scenario, log=sys.stderr)
            print(format_table(result))
            if scenario.name == "burst":
                for name in ("berth", "docker"):
                    median = result.engine(name).wall.median
                    print(f"  {name}: {BURST / median:.1f} containers/s")
            path = write_result(result, args.results) if args.results else write_result(result)
            print(f"  -> {path}\n")
        if "memory" in args.scenarios:
            print("\n".join(memory(sides)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
