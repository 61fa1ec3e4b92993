"""Builds, berth vs a real dockerd's classic builder on this machine: `python -m bench.build_bench [--rounds N]`.

Both engines get the same busybox image (imported from /bin/busybox) and are driven by the same docker CLI with
DOCKER_BUILDKIT=0 and --network none. The Dockerfile has 11 steps (ENV, WORKDIR, two COPYs of a 50 MB context,
two RUNs, ARG, LABEL, EXPOSE, CMD). Scenarios:
  cold    `docker build --no-cache`: every step runs (the context is sent every time, by the same client)
  cached  `docker build` after a warm-up build: every step is a cache hit
Results go to bench/results/. Reference (issue 7): docker's classic builder ~1.4 s cold and ~0.20 s cached on these
machines; BuildKit 0.64 s and 0.057 s.

May import: the standard library, bench.*, tests.peers and tests.berthd. Nothing from berth.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.berthd import PrivateBerthd
from tests.peers import DOCKER_CLI, PrivateDockerd, busybox_rootfs_tar

from bench.containers import _env
from bench.harness import Contender, Scenario, format_table, run_scenario, write_result

DOCKERFILE = """FROM busybox:latest
ENV APP=/app
WORKDIR /app
COPY big/ ./big/
COPY small/ ./small/
RUN du -s /app > /du
ARG V=1
LABEL v=$V
RUN echo $V > /v && ls small | wc -l > /count
EXPOSE 8080
CMD ["sh"]
"""


def make_context(where: Path, megabytes: int = 50) -> Path:
    ctx = where / "ctx"
    (ctx / "big").mkdir(parents=True)
    (ctx / "small").mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for i in range(megabytes):
        (ctx / "big" / f"blob{i:03d}.bin").write_bytes(os.urandom(1 << 20))
    for i in range(200):
        (ctx / "small" / f"f{i:03d}.txt").write_text(f"small file {i}\n" * 10)
    return ctx


@contextlib.contextmanager
def engines(base: Path) -> Iterator[dict[str, tuple[str, Callable[[], int | None]]]]:
    """{engine: (host, its daemon's pid)} with busybox:latest imported into both."""
    rootfs = base / "busybox-rootfs.tar"
    rootfs.write_bytes(busybox_rootfs_tar())
    with PrivateDockerd(base_dir=base) as d, PrivateBerthd(base_dir=base) as b:
        for host in (d.host, b.host):
            subprocess.run([DOCKER_CLI, "-H", host, "import", "-c", 'CMD ["sh"]', str(rootfs), "busybox:latest"],
                           check=True, capture_output=True, env=_env())

        def dockerd_pid() -> int | None:
            with contextlib.suppress(OSError, ValueError):
                return int(d.pidfile.read_text().strip())
            return None

        yield {"berth": (b.host, lambda: b.proc.pid if b.proc is not None else None),
               "docker": (d.host, dockerd_pid)}


def build_argv(host: str, ctx: Path, *extra: str) -> list[str]:
    return [DOCKER_CLI, "-H", host, "build", "--network", "none", "-t", "bench-build:1", *extra, str(ctx)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=["cold", "cached"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=50)
    args = parser.parse_args(argv)
    env = {**_env(), "DOCKER_BUILDKIT": "0"}
    with tempfile.TemporaryDirectory(prefix="berth-build-bench-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        ctx = make_context(base, args.size_mb)
        with engines(base) as hosts:
            for host, _ in hosts.values():   # warm both: the cached scenario needs a build in the cache
                subprocess.run(build_argv(host, ctx), check=True, capture_output=True, env=env)
            for name in args.scenarios:
                extra = ("--no-cache",) if name == "cold" else ()
                scenario = Scenario(
                    name=f"build-{name}", description=f"docker build ({name}) of 11 steps, {args.size_mb} MB context",
                    contenders=tuple(Contender(engine, build_argv(host, ctx, *extra), client="docker CLI",
                                               env=env, daemon_pid=pid) for engine, (host, pid) in hosts.items()),
                    rounds=args.rounds, warmup=1)
                result = run_scenario(scenario, log=sys.stderr)
                print(format_table(result))
                print(f"results: {write_result(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
