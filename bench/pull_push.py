"""Registry pull and push, berthd vs a real dockerd, both driven by the docker CLI: `python -m bench.pull_push`.

Scenarios (engines alternating round by round, `bench.harness`):
  pull   `docker pull <registry>/bench/img:1` of the bench image (~410 MB, 4 layers, gzip in the registry as
         skopeo put it there); before every round the image is removed from the daemon (untimed).
  push   `docker push <registry>/bench/push:1` of the same image loaded into the daemon; before every round the
         registry's storage is emptied (untimed), so every blob is uploaded again.
Each engine talks to its own Debian docker-registry with the same config: dockerd runs in its own network
namespace (tests.peers.PrivateDockerd), so its registry runs there too; berthd's runs on the host's loopback.
Note what each daemon uploads: dockerd gzips a loaded (uncompressed) layer on push, berthd pushes the blobs it
stores as they are (a loaded image's layers are uncompressed tars), so the push bytes differ; the registry
accepts both.

May import: the standard library, bench.*, tests.* (the private daemons and the registry fixture). Nothing from
berth: berth only runs as a program here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.berthd import PrivateBerthd
from tests.distribution.registry import ReferenceRegistry
from tests.peers import DOCKER_CLI, PrivateDockerd, _empty_docker_config

from bench.harness import Contender, Scenario, format_table, run_scenario, write_result
from bench.image import CACHE, bench_image

SCENARIOS = ("pull", "push")


def _docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "DOCKER_CONFIG": _empty_docker_config()}
    proc = subprocess.run([DOCKER_CLI, "-H", host, *args], capture_output=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} on {host}: {proc.stderr.decode(errors='replace')}")
    return proc


@contextlib.contextmanager
def engines(work: Path) -> Iterator[tuple[tuple[str, str, ReferenceRegistry, PrivateBerthd | PrivateDockerd], ...]]:
    with contextlib.ExitStack() as stack:
        dockerd = stack.enter_context(PrivateDockerd(base_dir=Path("/tmp")))
        berthd = stack.enter_context(PrivateBerthd())
        reg_docker = stack.enter_context(ReferenceRegistry(work, netns=dockerd.netns))
        reg_berth = stack.enter_context(ReferenceRegistry(work))
        yield (("docker", dockerd.host, reg_docker, dockerd), ("berth", berthd.host, reg_berth, berthd))


def _empty_storage(reg: ReferenceRegistry) -> None:
    shutil.rmtree(reg.dir / "data", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pull_push", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the private dockerd and berthd need root", file=sys.stderr)
        return 1
    # a SIGTERM unwinds the ExitStack: the private daemons, registries and netns go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    image = bench_image(args.cache)
    print(f"bench image: {image.describe()}", flush=True)
    source = image.refs[0]
    work = args.cache / "pull-push"
    work.mkdir(parents=True, exist_ok=True)
    with engines(work) as found:
        for _name, _host, reg, _daemon in found:
            reg.seed(image.tar, "bench/img:1")
        if "pull" in args.scenarios:
            contenders = []
            for name, host, reg, _daemon in found:
                ref = f"{reg.host}/bench/img:1"

                def setup(host: str = host, ref: str = ref) -> None:
                    _docker(host, "rmi", ref, check=False)
                    _docker(host, "image", "prune", "-f", check=False)

                contenders.append(Contender(name, [DOCKER_CLI, "-H", host, "pull", ref], setup=setup,
                                            client="docker CLI",
                                            env={"DOCKER_CONFIG": _empty_docker_config(), "PATH": "/usr/bin:/bin"}))
            result = run_scenario(Scenario("pull", f"docker pull of {image.describe()} from a local registry",
                                           tuple(contenders), rounds=args.rounds, warmup=1), log=sys.stdout)
            print(format_table(result), f"\n  -> {write_result(result, args.results) if args.results else write_result(result)}\n",
                  flush=True)
        if "push" in args.scenarios:
            contenders = []
            for name, host, reg, _daemon in found:
                _docker(host, "load", "-i", str(image.tar))   # after the pulls: they must find no layer local
                ref = f"{reg.host}/bench/push:1"
                _docker(host, "tag", source, ref)

                def setup(reg: ReferenceRegistry = reg) -> None:
                    _empty_storage(reg)

                contenders.append(Contender(name, [DOCKER_CLI, "-H", host, "push", ref], setup=setup,
                                            client="docker CLI",
                                            env={"DOCKER_CONFIG": _empty_docker_config(), "PATH": "/usr/bin:/bin"}))
            result = run_scenario(Scenario("push", f"docker push of {image.describe()} to a local registry",
                                           tuple(contenders), rounds=args.rounds, warmup=1), log=sys.stdout)
            print(format_table(result), f"\n  -> {write_result(result, args.results) if args.results else write_result(result)}\n",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
