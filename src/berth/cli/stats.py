"""`berth stats`: containers' CPU, memory, network, block I/O and pids from the stats API, as docker computes and
shows them (`--no-stream` for one sample; otherwise the table redrawn as samples arrive).

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import threading
import time

from berth.cli.context import Ctx
from berth.cli.formatter import render_list
from berth.cli.gotemplate import Record
from berth.cli.units import human_size, truncate_id
from berth.client.transport import path_segment
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t"
               "{{.PIDs}}")
STATS_HEADER = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                "PIDs": "PIDS"}


def binary_size(n: float) -> str:
    """go-units BytesSize: "%.4g" with binary units."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.4g}{units[i]}"


class Sample:
    """One container's numbers, computed as docker's stats helpers do."""

    def __init__(self, container: str, s: dict[str, Any]) -> None:
        self.container = container
        self.id = str(s.get("id") or "")
        self.name = str(s.get("name") or "").removeprefix("/")
        cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        cpu_delta = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - \
            int((pre.get("cpu_usage") or {}).get("total_usage") or 0)
        system_delta = int(cpu.get("system_cpu_usage") or 0) - int(pre.get("system_cpu_usage") or 0)
        online = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []))
        self.cpu = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
        mem = s.get("memory_stats") or {}
        usage = int(mem.get("usage") or 0)
        stats = mem.get("stats") or {}
        if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
            usage -= int(stats["total_inactive_file"])
        elif int(stats.get("inactive_file") or 0) < usage:
            usage -= int(stats.get("inactive_file") or 0)
        self.mem, self.limit = usage, int(mem.get("limit") or 0)
        self.mem_perc = usage / self.limit * 100.0 if self.limit else 0.0
        nets = s.get("networks") or {}
        self.rx = sum(int(n.get("rx_bytes") or 0) for n in nets.values())
        self.tx = sum(int(n.get("tx_bytes") or 0) for n in nets.values())
        self.read = self.write = 0
        for entry in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = str(entry.get("op") or "").lower()
            if op == "read":
                self.read += int(entry.get("value") or 0)
            elif op == "write":
                self.write += int(entry.get("value") or 0)
        self.pids = int((s.get("pids_stats") or {}).get("current") or 0)

    def record(self, trunc: bool) -> Record:
        return Record("*formatter.statsContext", {
            "Container": lambda: self.container, "Name": lambda: self.name or "--",
            "ID": lambda: truncate_id(self.id) if trunc else self.id,
            "CPUPerc": lambda: f"{self.cpu:.2f}%",
            "MemUsage": lambda: f"{binary_size(self.mem)} / {binary_size(self.limit)}",
            "MemPerc": lambda: f"{self.mem_perc:.2f}%",
            "NetIO": lambda: f"{human_size(self.rx, 3)} / {human_size(self.tx, 3)}",
            "BlockIO": lambda: f"{human_size(self.read, 3)} / {human_size(self.write, 3)}",
            "PIDs": lambda: str(self.pids),
        })


def _names(ctx: Ctx, a: argparse.Namespace) -> list[str]:
    if a.containers:
        return list(a.containers)
    listed = ctx.client.get_json("/containers/json", {"all": True if a.all else None}) or []
    return [str(c["Id"]) for c in listed]


def run_stats(ctx: Ctx, a: argparse.Namespace) -> int:
    fmt = a.format or "table"
    if fmt == "table":
        fmt = STATS_TABLE
    names = _names(ctx, a)
    if a.no_stream:
        samples, errors = [], []
        for name in names:
            try:
                raw = ctx.client.get_json(f"/containers/{path_segment(name)}/stats", {"stream": False})
            except BerthError as exc:
                from berth.cli.containers import daemon_message

                errors.append(daemon_message(exc))
                continue
            samples.append(Sample(name, raw or {}))
        ctx.out.write(render_list(fmt, [s.record(not a.no_trunc) for s in samples], STATS_HEADER))
        if errors:
            ctx.err.write("\n".join(errors) + "\n")
            return 1
        return 0
    latest: dict[str, Sample] = {}
    lock = threading.Lock()

    def follow(name: str) -> None:
        with ctx.client.sibling() as client:
            try:
                for raw in client.stream_json("GET", f"/containers/{path_segment(name)}/stats", {"stream": True}):
                    with lock:
                        latest[name] = Sample(name, raw or {})
            except BerthError:
                return

    for name in names:
        threading.Thread(target=follow, args=(name,), daemon=True).start()
    clear = "\033[2J\033[H" if ctx.out_is_terminal() else ""
    while True:
        time.sleep(1.0)
        with lock:
            rows = [latest[n].record(not a.no_trunc) for n in names if n in latest]
        ctx.out.write(clear + render_list(fmt, rows, STATS_HEADER))
        ctx.out.flush()
