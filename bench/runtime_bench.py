"""Time `run` of /bin/true in a busybox bundle: berth-runtime vs runc vs crun vs the unshare+chroot floor.

    .venv/bin/python bench/runtime_bench.py [--runs 30]

Prints the median of each, the ratios to runc, and where berth-runtime's time goes (interpreter start, imports,
the in-process API doing the work). Needs root, hyperfine, runc; crun is run in a private mount namespace without
the hybrid cgroup2 mount, which crun 1.8 refuses. Our modules are byte-compiled first: this environment sets
PYTHONDONTWRITEBYTECODE, and an installed package has its .pyc files.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.runtime.conftest import default_config, make_rootfs  # noqa: E402

from berth.runtime import api  # noqa: E402

PY = sys.executable
BERTH = str(Path(PY).with_name("berth-runtime"))


CPU: dict[str, float] = {}  # mean user+system ms per run (hyperfine counts children): steadier on a busy machine


def hyperfine(commands: dict[str, str], runs: int, prefix: list[str] | None = None) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", out.name]
        for name, cmd in commands.items():
            argv += ["--command-name", name, cmd]
        subprocess.run([*(prefix or []), *argv], check=True, stdout=subprocess.DEVNULL)
        data = json.loads(Path(out.name).read_text())
    for r in data["results"]:
        CPU[r["command"]] = (r["user"] + r["system"]) * 1000
    return {r["command"]: statistics.median(r["times"]) * 1000 for r in data["results"]}


def in_process(bundle: Path, state: Path, runs: int) -> float:
    times = []
    for i in range(runs + 3):
        t0 = time.perf_counter()
        pid = api.create(f"inproc{i}", bundle, state)
        api.start(f"inproc{i}", state)
        api.wait(pid)
        api.delete(f"inproc{i}", state)
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("hyperfine") is None or shutil.which("runc") is None:
        print("needs root, hyperfine and runc", file=sys.stderr)
        return 2
    compileall.compile_dir(str(REPO / "src" / "berth"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        bundle = base / "bundle"
        make_rootfs(bundle / "rootfs")
        (bundle / "config.json").write_text(json.dumps(default_config(["/bin/true"])))
        os.chdir(bundle)
        rootfs = bundle / "rootfs"
        results = hyperfine({
            "berth-runtime run": f"{BERTH} --root {base}/berth run b1",
            "runc run": f"runc --root {base}/runc run r1",
            "unshare+chroot floor": f"unshare -fpmun --mount-proc chroot {rootfs} /bin/true",
            "python -c pass": f"{PY} -c pass",
            "python -S -c pass": f"{PY} -S -c pass",
            "python: import berth.runtime.cli": f"{PY} -c 'import berth.runtime.cli'",
        }, args.runs)
        if shutil.which("crun"):
            script = "mount --make-rprivate / && umount /sys/fs/cgroup/unified && exec \"$@\""
            results |= hyperfine({"crun run": f"crun --root {base}/crun run c1"}, args.runs,
                                 prefix=["unshare", "-m", "sh", "-c", script, "sh"])
        results["berth API in-process (create+start+wait+delete)"] = in_process(bundle, base / "api", args.runs)
    runc = results["runc run"]
    print(f"{'':52s} {'median ms':>10s} {'x runc':>8s} {'cpu ms':>8s} {'x runc':>8s}")
    for name, ms in results.items():
        cpu = CPU.get(name)
        cpu_text = f"{cpu:8.1f} {cpu / CPU['runc run']:8.2f}" if cpu is not None else ""
        print(f"{name:52s} {ms:10.1f} {ms / runc:8.2f} {cpu_text}")
    start = results["python -c pass"]
    imports = results["python: import berth.runtime.cli"] - start
    work = results["berth API in-process (create+start+wait+delete)"]
    print("\nberth-runtime run, where the time goes (medians, ms):")
    print(f"  interpreter start            {start:6.1f}")
    print(f"  imports of berth.runtime     {imports:6.1f}")
    print(f"  the work (API in-process)    {work:6.1f}")
    print(f"  rest (argv, exit)            {results['berth-runtime run'] - start - imports - work:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
