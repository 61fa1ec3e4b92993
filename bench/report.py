"""A markdown table of the latest result of each scenario in bench/results/ (for bench/README.md):
`python -m bench.report [RESULT.json ...]`.

May import: the standard library, bench.harness.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR


def latest_results(directory: Path = RESULTS_DIR) -> list[Path]:
    """The newest result file of each scenario (by the `started` time inside), in scenario order of appearance."""
    newest: dict[str, tuple[str, Path]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            key, started = data["scenario"], data["started"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if key not in newest or started >= newest[key][0]:
            newest[key] = (started, path)
    order = ["load", "save", "images", "start", "version"]
    return [newest[k][1] for k in sorted(newest, key=lambda k: (order.index(k) if k in order else len(order), k))]


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def markdown(results: Sequence[dict[str, Any]]) -> str:
    lines = ["| scenario | engine (client) | median | min - max | daemon CPU | n | median / docker's |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        ratios = r.get("ratios", {})
        for e in r["engines"]:
            wall, cpu = e["wall"], e.get("daemon_cpu")
            ratio = ratios.get(f"{e['name']}/{r['baseline']}")
            lines.append(
                f"| {r['scenario']} | {e['name']} ({e['client']}) | {_seconds(wall['median'])} | "
                f"{_seconds(wall['min'])} - {_seconds(wall['max'])} | "
                f"{_seconds(cpu['median']) if cpu else '-'} | {wall['n']} | "
                f"{f'**{ratio:.2f}**' if ratio is not None else '1'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="result files (default: the latest of each scenario)")
    parser.add_argument("-s", "--scenario", action="append", default=[],
                        help="only this scenario (repeatable; default: all)")
    args = parser.parse_args(argv)
    paths = args.files or latest_results()
    if args.scenario:
        paths = [p for p in paths if json.loads(p.read_text()).get("scenario") in args.scenario]
    if not paths:
        print(f"no results in {RESULTS_DIR}: run python -m bench.load_save first", file=sys.stderr)
        return 1
    results = [json.loads(p.read_text()) for p in paths]
    started = sorted(r["started"] for r in results)
    m = results[0]["machine"]
    print(f"Measured {started[0]} .. {started[-1]} on {m['nproc']} CPUs ({m['cpu_model']}), "
          f"{m['mem_total_mib']} MiB, Linux {m['kernel']}, Python {m['python']}.\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
