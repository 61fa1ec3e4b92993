"""Network throughput, berth vs a real dockerd on this machine: `python -m bench.network_bench [--size-mb N]`.

Scenarios (engines alternating round by round, both driven by the same docker CLI and the same busybox image):
  c2c   container to container over the daemon's default bridge: a client container (`sleep`, untimed) runs
        `wget -O /dev/null http://SERVER/big` through `docker exec`; the server is busybox httpd serving a sparse
        file of --size-mb MiB.
  pub   host to container over a published port: `curl -o /dev/null http://127.0.0.1:PORT/big` from the host's
        namespace (for the private dockerd, which lives in its own netns, from that netns: its docker-proxy or
        DNAT is what Docker users get).
  setup the milliseconds berth's network setup adds to a start: `run --rm busybox true` on the default bridge
        minus the same with `--network none`, berth only.
Results go to bench/results/.

May import: the standard library, bench.*, tests.peers and tests.berthd. Nothing from berth: berth is only ever run
as a program here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.berthd import PrivateBerthd
from tests.peers import DOCKER_CLI, PrivateDockerd, busybox_rootfs_tar

from bench.containers import _env
from bench.harness import Contender, Scenario, format_table, run_scenario, write_result

SCENARIOS = ("c2c", "pub", "setup")


@dataclass(frozen=True)
class Engine:
    name: str
    host: str
    netns: str | None        # where the published port answers (None: the host's namespace)

    def docker(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([DOCKER_CLI, "-H", self.host, *args], capture_output=True, env=_env())
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()

    def argv(self, *args: str) -> list[str]:
        return [DOCKER_CLI, "-H", self.host, *args]

    def in_netns(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *argv] if self.netns else list(argv)


@contextlib.contextmanager
def engines(base: Path) -> Iterator[list[Engine]]:
    rootfs = base / "busybox-rootfs.tar"
    rootfs.write_bytes(busybox_rootfs_tar())
    with PrivateDockerd(base_dir=base, bridge=True) as d, PrivateBerthd(base_dir=base) as b:
        for host in (d.host, b.host):
            subprocess.run([DOCKER_CLI, "-H", host, "import", "-c", 'CMD ["sh"]', str(rootfs), "busybox:latest"],
                           check=True, capture_output=True, env=_env())
        yield [Engine("berth", b.host, None), Engine("docker", d.host, d.netns)]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_servers(e: Engine, size_mb: int, port: int) -> str:
    """The httpd server (published on port) and an idle client; returns the server's address."""
    script = f"dd if=/dev/zero of=/big bs=1M count=0 seek={size_mb} 2>/dev/null && exec httpd -f -p 80 -h /"
    e.docker("run", "-d", "--name", "nbsrv", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", script)
    e.docker("run", "-d", "--name", "nbcli", "busybox", "sleep", "3600")
    info = json.loads(e.docker("inspect", "nbsrv"))[0]
    ip = str(info["NetworkSettings"]["IPAddress"])
    deadline = time.monotonic() + 15
    while subprocess.run(e.argv("exec", "nbcli", "wget", "-q", "--spider", f"http://{ip}/big"), capture_output=True,
                         env=_env()).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{e.name}: the httpd at {ip} does not answer")
        time.sleep(0.1)
    return ip


def scenarios(sides: list[Engine], names: Sequence[str], rounds: int, size_mb: int) -> Iterator[Scenario]:
    ports = {e.name: free_port() for e in sides}
    ips = {e.name: start_servers(e, size_mb, ports[e.name]) for e in sides}
    if "c2c" in names:
        yield Scenario("c2c", f"container to container over the bridge, {size_mb} MiB (wget via docker exec)",
                       tuple(Contender(e.name, e.argv("exec", "nbcli", "wget", "-q", "-O", "/dev/null",
                                                      f"http://{ips[e.name]}/big"), client="docker CLI")
                             for e in sides), rounds=rounds)
    if "pub" in names:
        yield Scenario("pub", f"host to container over a published port, {size_mb} MiB (curl)",
                       tuple(Contender(e.name, e.in_netns(["curl", "-sS", "-o", "/dev/null",
                                                           f"http://127.0.0.1:{ports[e.name]}/big"]), client="curl")
                             for e in sides), rounds=rounds)


def setup_ms(berth: Engine, rounds: int) -> str:
    """Median wall time of run --rm busybox true on the default bridge and with --network none, alternating."""
    times: dict[str, list[float]] = {"bridge": [], "none": []}
    for i in range(rounds + 1):
        for mode in ("bridge", "none"):
            t = time.perf_counter()
            berth.docker("run", "--rm", "--network", mode, "busybox", "true")
            if i:
                times[mode].append(time.perf_counter() - t)
    b, n = statistics.median(times["bridge"]), statistics.median(times["none"])
    return (f"setup: run --rm busybox true, berth: default bridge {b * 1000:.0f} ms, --network none "
            f"{n * 1000:.0f} ms: the bridge endpoint (veth, address, teardown) adds {(b - n) * 1000:.0f} ms "
            f"(medians of {rounds})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.network_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--results", type=Path, default=None, help="results dir (default bench/results)")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp, engines(Path(tmp)) as sides:
        for scenario in scenarios(sides, args.scenarios, args.rounds, args.size_mb):
            result = run_scenario(scenario, log=sys.stderr)
            print(format_table(result))
            for name in ("berth", "docker"):
                median = result.engine(name).wall.median
                print(f"  {name}: {args.size_mb / median:.0f} MiB/s")
            path = write_result(result, args.results) if args.results else write_result(result)
            print(f"  -> {path}\n")
        if "setup" in args.scenarios:
            print(setup_ms(sides[0], args.rounds * 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
