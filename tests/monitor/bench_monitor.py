"""Monitor start, teardown, memory and log throughput: `python -m tests.monitor.bench_monitor [-n N]` (root).

Not a test (nothing asserts a speed: these VMs are shared and noisy). For a busybox `true` it times, as medians:
the built-in runtime's create alone (in this process), a monitor exec'd per container, and one forked by the
zygote: from spawn() to "created" (the ready line) and to exit.json after attach + start. Then the RSS of an idle
monitor both ways and of the zygote, and the json-file log's throughput for short lines and for 64 KiB chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from berth.monitor import MonitorOptions, client, spawn, stop_zygote
from berth.runtime import api
from tests.runtime.conftest import default_config, make_rootfs


def _wait_file(path: Path) -> None:
    while not path.exists():
        time.sleep(0.0002)


def _gone(pid: int) -> None:
    while True:
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except FileNotFoundError:
            return
        time.sleep(0.001)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def _bundle(base: Path, args: list[str]) -> Path:
    (base / "bundle").mkdir(parents=True, exist_ok=True)
    if not (base / "bundle" / "rootfs").exists():
        make_rootfs(base / "bundle" / "rootfs")
    (base / "bundle" / "config.json").write_text(json.dumps(default_config(args)))
    return base / "bundle"


def bench_start(base: Path, zygote: str, n: int) -> None:
    bundle = _bundle(base, ["true"])
    state = str(base / "state")
    results: dict[str, list[tuple[float, float]]] = {"create only (in-process)": [], "monitor, exec'd": [],
                                                     "monitor, zygote-forked": []}
    for i in range(n):
        for mode, times in results.items():
            cid = f"bench-{os.getpid()}-{i}"
            if mode.startswith("create"):
                t = time.monotonic()
                pid = api.create(cid, bundle, state)
                t1 = time.monotonic()
                api.start(cid, state)
                api.wait(pid)
                api.delete(cid, state)
                times.append((t1 - t, time.monotonic() - t))
                continue
            (base / "exit.json").unlink(missing_ok=True)
            opts = MonitorOptions(cid, str(bundle), state, str(base), str(base / "m.sock"))
            t = time.monotonic()
            mpid = spawn(opts, zygote=zygote if "zygote" in mode else None)
            t1 = time.monotonic()
            attach = client.attach(opts.socket)
            client.call(opts.socket, {"op": "start"})
            while attach.recv(65536):
                pass
            _wait_file(base / "exit.json")
            times.append((t1 - t, time.monotonic() - t))
            _gone(mpid)
    for mode, times in results.items():
        created = statistics.median(x[0] for x in times) * 1000
        done = statistics.median(x[1] for x in times) * 1000
        print(f"{mode:26s} created {created:6.1f} ms   until exit recorded {done:6.1f} ms   (median of {n})")


def bench_rss(base: Path, zygote: str) -> None:
    bundle = _bundle(base, ["sh", "-c", "read x"])
    for mode in ("exec'd", "zygote-forked"):
        opts = MonitorOptions(f"rss-{os.getpid()}", str(bundle), str(base / "state"), str(base),
                              str(base / "m.sock"), stdin=True)
        pid = spawn(opts, zygote=zygote if "zygote" in mode else None)
        client.call(opts.socket, {"op": "start"})
        print(f"monitor RSS, {mode:14s} {_rss_kib(pid) / 1024:5.1f} MiB")
        attach = client.attach(opts.socket, stdin=True)
        attach.sendall(b"\n")
        while attach.recv(65536):
            pass
        _gone(pid)
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if zygote.encode() in cmd.split(b"\0") and Path(f"/proc/{name}/comm").read_text().strip() != "berth-monitor":
                print(f"zygote RSS                  {_rss_kib(int(name)) / 1024:5.1f} MiB")


def bench_log(base: Path) -> None:
    for name, cmd in (("short lines (yes)", "yes hello | head -c 50000000"),
                      ("64 KiB chunks", "head -c 50000000 /dev/zero | tr '\\0' x")):
        bundle = _bundle(base, ["sh", "-c", cmd])
        (base / "exit.json").unlink(missing_ok=True)
        opts = MonitorOptions(f"log-{os.getpid()}", str(bundle), str(base / "state"), str(base),
                              str(base / "m.sock"))
        pid = spawn(opts)
        t = time.monotonic()
        client.call(opts.socket, {"op": "start"})
        _wait_file(base / "exit.json")
        elapsed = time.monotonic() - t
        print(f"log, {name:22s} 50 MB in {elapsed:5.2f} s = {50 / elapsed:6.1f} MB/s")
        _gone(pid)
        Path(opts.log_path).unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bmb", dir="/tmp"))
    zygote = str(base / "z.sock")
    try:
        bench_start(base, zygote, args.n)
        bench_rss(base, zygote)
        bench_log(base)
    finally:
        stop_zygote(zygote)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
