"""Image scenarios of issue #2, berth vs a real dockerd on this machine, in one run: `python -m bench.load_save`.

Scenarios (each a `bench.harness.Scenario`, engines alternating round by round):
  load    `load -i bench-image.tar` (~400 MB, 4 layers); the image is removed (untimed) before every round.
          Floors: `sha256sum` and `cat > /dev/null` of the same tar (reading and hashing it is the least a load
          does), and `tar -x` of its layers into an empty dir (creating the files, the rest of a load).
  save    `save -o out.tar berth-bench:1`; the file is deleted (untimed) before every round. Floor: `cp` of the tar.
  images  `images` with 101 images present (100 distinct tiny ones plus the bench image) in both engines.
  start   the CLI's own start: `berth --version` vs `docker --version` (no daemon involved); floor: the venv's
          `python -c pass`.
  version one round trip: `berth version -f x` vs `docker version --format x`.
Plus an import-time breakdown of `berth --version` (`python -X importtime`).

Each engine is driven by its own CLI: the berth CLI for berthd when it runs, else the docker CLI (recorded as the
contender's `client`). Until berthd starts, the berth side is skipped and the berth CLI is measured against the
private dockerd instead ("berth-cli>dockerd"), which isolates the client's cost. Results go to bench/results/.

May import: the standard library, bench.*, tests.peers and tests.berthd (the private daemons). Nothing from berth:
berth is only ever run as a program here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.berthd import BERTH, BERTHD, PrivateBerthd
from tests.peers import DOCKER_CLI, PrivateDockerd, _empty_docker_config

from bench.harness import Contender, Result, Scenario, format_table, run_scenario, write_result
from bench.image import CACHE, ArchiveInfo, archive_info, bench_image, many_images

SCENARIOS = ("load", "save", "images", "start", "version")


@dataclass(frozen=True)
class Engine:
    """A daemon and the CLI that drives it."""

    name: str
    host: str
    client_argv: tuple[str, ...]  # the CLI up to and including `-H <host>`
    client: str  # what drove it, for the result
    root: Path  # the daemon's data dir (for disk use)
    pid: Callable[[], int | None]
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        return [*self.client_argv, *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(self.argv(*args), capture_output=True, env=self.env or None)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} exited {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc


def _docker_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_CONFIG": _empty_docker_config(), "DOCKER_CLI_HINTS": "false"}


def _version_of(argv: Sequence[str]) -> str:
    proc = subprocess.run([*argv, "--version"], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else "?"


def berthd_runs() -> bool:
    return subprocess.run([BERTHD, "--help"], capture_output=True).returncode == 0


def berth_cli_runs() -> bool:
    return subprocess.run([BERTH, "--version"], capture_output=True).returncode == 0


def _pidfile_pid(path: Path) -> Callable[[], int | None]:
    def read() -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None
    return read


def docker_engine(d: PrivateDockerd) -> Engine:
    return Engine("docker", d.host, (DOCKER_CLI, "-H", d.host), _version_of([DOCKER_CLI]), d.data_root,
                  _pidfile_pid(d.pidfile), _docker_env())


def berth_engine(b: PrivateBerthd, client: str) -> Engine:
    pid: Callable[[], int | None] = lambda: b.proc.pid if b.proc is not None else None  # noqa: E731
    if client == "berth":
        return Engine("berth", b.host, (BERTH, "-H", b.host), "berth CLI: " + _version_of([BERTH]), b.root, pid)
    return Engine("berth", b.host, (DOCKER_CLI, "-H", b.host), _version_of([DOCKER_CLI]), b.root, pid,
                  _docker_env())


def berth_cli_on_dockerd(d: PrivateDockerd) -> Engine:
    return Engine("berth-cli>dockerd", d.host, (BERTH, "-H", d.host), "berth CLI: " + _version_of([BERTH]),
                  d.data_root, _pidfile_pid(d.pidfile))


def disk_use(path: Path) -> int:
    proc = subprocess.run(["du", "-s", "--bytes", str(path)], capture_output=True, text=True)
    return int(proc.stdout.split()[0]) if proc.returncode == 0 and proc.stdout else -1


# ---- scenarios ---------------------------------------------------------------------------------------------

def _remove_image(engine: Engine, ref: str) -> Callable[[], None]:
    def remove() -> None:
        engine.run("rmi", ref, check=False)
    return remove


def split_layers(image: ArchiveInfo, into: Path) -> list[Path]:
    """The image's layer tars, extracted once (untimed) from the archive, base layer first."""
    with tarfile.open(image.tar) as tf:
        member = tf.extractfile("manifest.json")
        if member is None:
            raise RuntimeError(f"{image.tar} has no manifest.json")
        names = json.load(member)[0]["Layers"]
        out = []
        for i, name in enumerate(names):
            path = into / f"layer{i}.tar"
            if not path.is_file():
                src = tf.extractfile(name)
                if src is None:
                    raise RuntimeError(f"{image.tar}: layer {name} is not a file")
                tmp = path.with_suffix(".part")
                with src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, path)
            out.append(path)
    return out


def load_scenario(engines: Sequence[Engine], image: ArchiveInfo, rounds: int,
                  layers: Sequence[Path] = (), extract_dir: Path = Path("/nonexistent")) -> Scenario:
    ref = image.refs[0]
    contenders = [Contender(e.name, e.argv("load", "-i", str(image.tar)), setup=_remove_image(e, ref),
                            client=e.client, env=e.env or None, daemon_pid=e.pid) for e in engines]
    contenders += [Contender("sha256sum", ["sha256sum", str(image.tar)], client="coreutils"),
                   Contender("cat", ["cat", str(image.tar)], client="coreutils")]
    if layers:
        # Creating the files is most of a load on a slow-to-create-files VM: GNU tar extracting the same layers
        # (already split out of the archive, into an emptied dir) is that floor.
        def fresh() -> None:
            shutil.rmtree(extract_dir, ignore_errors=True)
            extract_dir.mkdir(parents=True)

        script = 'd=$1; shift; for l in "$@"; do tar -xf "$l" -C "$d" || exit 1; done'
        contenders.append(Contender("tar-x", ["sh", "-c", script, "sh", str(extract_dir), *map(str, layers)],
                                    setup=fresh, teardown=lambda: shutil.rmtree(extract_dir, ignore_errors=True),
                                    client="GNU tar"))
    return Scenario("load", f"load -i {image.describe()}; image removed before every round", tuple(contenders),
                    rounds=rounds, warmup=1, rotate=True, settle=2.0)


def save_scenario(engines: Sequence[Engine], image: ArchiveInfo, out_dir: Path, rounds: int) -> Scenario:
    ref = image.refs[0]

    def delete(path: Path) -> Callable[[], None]:
        return lambda: path.unlink(missing_ok=True)

    contenders = []
    for e in engines:
        out = out_dir / f"save-{e.name}.tar"
        contenders.append(Contender(e.name, e.argv("save", "-o", str(out), ref), setup=delete(out),
                                    teardown=delete(out), client=e.client, env=e.env or None, daemon_pid=e.pid))
    floor_out = out_dir / "save-cp.tar"
    contenders.append(Contender("cp", ["cp", str(image.tar), str(floor_out)], setup=delete(floor_out),
                                teardown=delete(floor_out), client="coreutils"))
    return Scenario("save", f"save -o FILE {ref} ({image.size / (1 << 20):.0f} MiB); file deleted before every round",
                    tuple(contenders), rounds=rounds, warmup=1, rotate=True, settle=1.0)


def images_scenario(engines: Sequence[Engine], count: int, rounds: int) -> Scenario:
    return Scenario("images", f"images with {count} images present", tuple(
        Contender(e.name, e.argv("images"), client=e.client, env=e.env or None, daemon_pid=e.pid)
        for e in engines), rounds=rounds, warmup=2, sync=False)


def start_scenario(rounds: int) -> Scenario:
    return Scenario("start", "the CLI's own start: --version, no daemon", (
        Contender("berth", [BERTH, "--version"], client="berth CLI"),
        Contender("docker", [DOCKER_CLI, "--version"], client=_version_of([DOCKER_CLI]), env=_docker_env()),
        # The floor of any console script in this venv: the interpreter starting, site and all.
        Contender("python", [sys.executable, "-c", "pass"], client="python -c pass"),
    ), rounds=rounds, warmup=3, sync=False)


def version_scenario(engines: Sequence[Engine], rounds: int) -> Scenario:
    contenders = []
    for e in engines:
        # `version -f x` asks the daemon for its version once and prints "x".
        flag = "-f" if e.client_argv[0] == BERTH else "--format"
        contenders.append(Contender(e.name, e.argv("version", flag, "x"), client=e.client, env=e.env or None))
    return Scenario("version", "one round trip: version --format x", tuple(contenders),
                    rounds=rounds, warmup=3, sync=False)


# ---- checks (untimed): a fast wrong answer is not a result ---------------------------------------------------

def check_load(engine: Engine, image: ArchiveInfo) -> int:
    """Load, check the layers, remove again; the bytes left under the daemon's root."""
    ref = image.refs[0]
    engine.run("rmi", ref, check=False)
    engine.run("load", "-i", str(image.tar))
    inspected = json.loads(engine.run("image", "inspect", ref).stdout)
    layers = len(inspected[0]["RootFS"]["Layers"])
    if layers != image.layers:
        raise RuntimeError(f"{engine.name}: after load, {ref} has {layers} layers, expected {image.layers}")
    engine.run("rmi", ref)
    return disk_use(engine.root)


def check_save(engine: Engine, image: ArchiveInfo, out_dir: Path) -> None:
    out = out_dir / f"check-{engine.name}.tar"
    engine.run("save", "-o", str(out), image.refs[0])
    try:
        saved = archive_info(out)
    finally:
        out.unlink(missing_ok=True)
    if saved.layers != image.layers or saved.refs != image.refs:
        raise RuntimeError(f"{engine.name}: save wrote {saved.layers} layers and refs {saved.refs}, "
                           f"expected {image.layers} and {image.refs}")


def check_images(engine: Engine, expected: int) -> None:
    lines = engine.run("images").stdout.decode().splitlines()
    if len(lines) - 1 != expected:
        raise RuntimeError(f"{engine.name}: images lists {len(lines) - 1} images, expected {expected}")


# ---- import-time breakdown ---------------------------------------------------------------------------------

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


@dataclass(frozen=True, slots=True)
class ImportCost:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportCost]:
    costs = []
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            costs.append(ImportCost(m.group(4), int(m.group(1)), int(m.group(2)), (len(m.group(3)) - 1) // 2))
    return costs


def importtime_breakdown(argv: Sequence[str], runs: int = 7) -> tuple[list[ImportCost], float]:
    """`python -X importtime` of the berth CLI; the run with the least total import time, and its total (s)."""
    best: list[ImportCost] | None = None
    best_total = float("inf")
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True)
        costs = parse_importtime(proc.stderr)
        total = sum(c.cumulative_us for c in costs if c.depth == 0) / 1e6
        if total < best_total:
            best, best_total = costs, total
    return best or [], best_total


def format_importtime(costs: Sequence[ImportCost], total: float, top: int = 15) -> str:
    lines = [f"berth --version: {total * 1000:.1f} ms of imports (python -X importtime, best of runs)",
             f"  {'cumulative':>10} {'self':>8}  module (top-level imports first)"]
    for c in sorted((c for c in costs if c.depth == 0), key=lambda c: -c.cumulative_us)[:top]:
        lines.append(f"  {c.cumulative_us / 1000:8.1f}ms {c.self_us / 1000:6.1f}ms  {c.module}")
    berth = sorted((c for c in costs if c.module.startswith("berth")), key=lambda c: -c.self_us)[:top]
    lines.append("  berth modules by self time:")
    for c in berth:
        lines.append(f"  {c.cumulative_us / 1000:8.1f}ms {c.self_us / 1000:6.1f}ms  {c.module}")
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def engines_up(client: str, cache: Path, cross: bool = True) -> Iterator[tuple[list[Engine], list[str]]]:
    """The private dockerd, berthd if it runs, and the engines to compare; notes say what was left out and why."""
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        d = stack.enter_context(PrivateDockerd(base_dir=cache))
        engines: list[Engine] = []
        if berthd_runs():
            b = stack.enter_context(PrivateBerthd(base_dir=cache))
            if client == "auto":
                client = "berth" if berth_cli_runs() else "docker"
            engines.append(berth_engine(b, client))
        else:
            notes.append(f"berthd does not start ({BERTHD} --help fails): berth side skipped")
        if cross and berth_cli_runs():
            # The berth CLI against the real dockerd: separates the client's cost from the daemon's.
            engines.append(berth_cli_on_dockerd(d))
        elif not berth_cli_runs():
            notes.append(f"the berth CLI does not run ({BERTH} --version fails)")
        engines.append(docker_engine(d))
        yield engines, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_save", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per scenario (default: per scenario)")
    parser.add_argument("--client", choices=("auto", "berth", "docker"), default="auto",
                        help="CLI driving berthd (auto: the berth CLI if it runs)")
    parser.add_argument("--no-cross", action="store_true",
                        help="leave out the berth CLI driving the real dockerd (berth-cli>dockerd)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--results", type=Path, default=None, help="results dir (default bench/results)")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    if os.geteuid() != 0:
        print("the private dockerd and berthd need root", file=sys.stderr)
        return 1

    image = bench_image(args.cache)
    many = many_images(args.cache)
    print(f"bench image: {image.describe()}\nmany images: {many.describe()}", flush=True)
    out_dir = args.cache / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []

    def n(default: int) -> int:
        return args.rounds if args.rounds is not None else default

    def record(scenario: Scenario, extra: dict[str, Any] | None = None) -> None:
        result = run_scenario(scenario, log=sys.stdout, notes={"skipped": notes, **(extra or {})})
        path = write_result(result, args.results) if args.results else write_result(result)
        print(format_table(result), f"\n  -> {path}\n", flush=True)
        results.append(result)

    with engines_up(args.client, args.cache, not args.no_cross) as (engines, notes):
        for note in notes:
            print("note:", note, flush=True)
        # Engines owning their image store; berth-cli>dockerd shares dockerd's with "docker".
        daemons = [e for e in engines if e.name != "berth-cli>dockerd"]
        if "load" in args.scenarios:
            # After a checked load and an rmi, what each daemon keeps on disk (a daemon keeping the blobs would
            # load faster the next round; this shows it).
            left = {e.name: check_load(e, image) for e in engines}
            print(f"  bytes under each daemon's root after load + rmi: {left}", flush=True)
            layers_dir = args.cache / f"layers-{image.size}"
            layers_dir.mkdir(parents=True, exist_ok=True)
            layers = split_layers(image, layers_dir)
            record(load_scenario(engines, image, n(5), layers, out_dir / "tar-x"),
                   {"image_bytes": image.size, "layers": image.layers, "root_bytes_after_rmi": left})
        if {"save", "images"} & set(args.scenarios):
            for e in daemons:
                e.run("load", "-i", str(image.tar))
        if "save" in args.scenarios:
            for e in engines:
                check_save(e, image, out_dir)
            record(save_scenario(engines, image, out_dir, n(5)), {"image_bytes": image.size})
        if "images" in args.scenarios:
            for e in daemons:
                e.run("load", "-i", str(many.tar))
            for e in engines:
                check_images(e, len(many.refs) + 1)
            record(images_scenario(engines, len(many.refs) + 1, n(20)))
        if "start" in args.scenarios and berth_cli_runs():
            record(start_scenario(n(30)))
            costs, total = importtime_breakdown([BERTH, "--version"])
            print(format_importtime(costs, total), "\n", flush=True)
        if "version" in args.scenarios:
            record(version_scenario(engines, n(20)))
    shutil.rmtree(out_dir, ignore_errors=True)
    print("summary (ratio of medians):")
    for r in results:
        for label, value in r.ratios.items():
            print(f"  {r.scenario:<8} {label:<24} {value:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
