"""The benchmark harness itself: alternation, ratio of medians, setup/teardown, failures, the JSON it writes.

Uses trivial commands (`true`, `sleep`) and callables; no dockerd, no berthd.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from bench.harness import (
    BenchError,
    Contender,
    EngineResult,
    Machine,
    Result,
    Sample,
    Scenario,
    Stats,
    format_table,
    process_cpu_seconds,
    ratio_of_medians,
    run_scenario,
    schedule,
    write_result,
)


def _result(walls: dict[str, list[float]], baseline: str = "docker") -> Result:
    engines = tuple(EngineResult(name, "test", tuple(Sample(i, w) for i, w in enumerate(ws)))
                    for name, ws in walls.items())
    return Result("t", "test", "2026-01-01T00:00:00+00:00", Machine.current(), baseline, (), engines)


def test_schedule_alternates_engines_round_by_round_after_the_warmups() -> None:
    assert schedule(["berth", "docker"], rounds=2, warmup=1) == [
        (-1, "berth"), (-1, "docker"), (0, "berth"), (0, "docker"), (1, "berth"), (1, "docker")]


def test_rotated_schedule_starts_each_round_one_place_further_and_measured_rounds_start_in_order() -> None:
    assert schedule(["a", "b", "c"], rounds=3, warmup=1, rotate=True) == [
        (-1, "c"), (-1, "a"), (-1, "b"),
        (0, "a"), (0, "b"), (0, "c"),
        (1, "b"), (1, "c"), (1, "a"),
        (2, "c"), (2, "a"), (2, "b")]
    # Over a full rotation each name runs first, second and third once.
    order = [n for _, n in schedule(["a", "b", "c"], rounds=3, rotate=True)]
    for position in range(3):
        assert sorted(order[position::3]) == ["a", "b", "c"]


def test_settle_waits_untimed_between_setup_and_action() -> None:
    result = run_scenario(Scenario("settle", "", (Contender("docker", ["true"]),), rounds=1, warmup=0, sync=False,
                                   settle=0.2))
    assert result.engine("docker").wall.max < 0.2


def test_ratio_is_of_medians_not_means_and_ignores_warmup_samples() -> None:
    # berth: one outlier drags the mean, not the median; the warm-up (round -1) is huge and must not count.
    berth = EngineResult("berth", "", (Sample(-1, 100.0), Sample(0, 1.0), Sample(1, 2.0), Sample(2, 60.0)))
    docker = EngineResult("docker", "", (Sample(-1, 0.001), Sample(0, 4.0), Sample(1, 4.0), Sample(2, 4.0)))
    result = Result("t", "", "2026-01-01T00:00:00+00:00", Machine.current(), "docker", (), (berth, docker))
    assert berth.wall == Stats.of([1.0, 2.0, 60.0])
    assert berth.wall.median == 2.0
    assert result.ratios == {"berth/docker": 0.5}


def test_every_non_baseline_contender_gets_a_ratio_and_a_missing_baseline_gives_none() -> None:
    result = _result({"berth": [3.0, 3.0], "docker": [2.0, 2.0], "floor": [1.0, 1.0]})
    assert result.ratios == {"berth/docker": 1.5, "floor/docker": 0.5}
    assert _result({"a": [1.0], "b": [2.0]}).ratios == {}


def test_a_zero_baseline_median_is_refused() -> None:
    with pytest.raises(ValueError):
        ratio_of_medians(1.0, 0.0)


def test_stats_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        Stats.of([])


def test_scenario_refuses_duplicate_names_and_no_contenders() -> None:
    with pytest.raises(ValueError):
        Scenario("s", "", (Contender("a", ["true"]), Contender("a", ["true"])))
    with pytest.raises(ValueError):
        Scenario("s", "", ())
    with pytest.raises(ValueError):
        Scenario("s", "", (Contender("a", ["true"]),), rounds=0)


def test_a_slower_command_gets_a_larger_median_and_the_ratio_shows_it(tmp_path: Path) -> None:
    scenario = Scenario("sleepy", "true vs sleep 0.05", (
        Contender("fast", ["true"]),
        Contender("docker", ["sleep", "0.05"]),
    ), rounds=3, warmup=1, sync=False)
    result = run_scenario(scenario)
    fast, slow = result.engine("fast"), result.engine("docker")
    assert slow.wall.min >= 0.05
    assert fast.wall.median < slow.wall.median
    assert result.ratios["fast/docker"] < 0.5
    assert len(fast.samples) == 4 and len(fast.measured) == 3
    assert result.order == ("-1:fast", "-1:docker", "0:fast", "0:docker", "1:fast", "1:docker",
                            "2:fast", "2:docker")


def test_setup_and_teardown_wrap_every_timed_action_in_alternation(tmp_path: Path) -> None:
    events: list[str] = []

    def contender(name: str) -> Contender:
        return Contender(name, lambda: events.append(f"run {name}"),
                         setup=lambda: events.append(f"setup {name}"),
                         teardown=lambda: events.append(f"teardown {name}"))

    run_scenario(Scenario("calls", "", (contender("A"), contender("B")), rounds=2, warmup=0, sync=False))
    assert events == ["setup A", "run A", "teardown A", "setup B", "run B", "teardown B"] * 2


def test_setup_runs_outside_the_timed_part(tmp_path: Path) -> None:
    result = run_scenario(Scenario("setup-untimed", "", (
        Contender("docker", ["true"], setup=lambda: time.sleep(0.1)),), rounds=2, warmup=0, sync=False))
    assert result.engine("docker").wall.max < 0.1


def test_a_failing_command_raises_with_its_stderr() -> None:
    scenario = Scenario("fails", "", (Contender("docker", ["sh", "-c", "echo broken-thing >&2; exit 3"]),),
                        rounds=1, warmup=0, sync=False)
    with pytest.raises(BenchError, match="exited 3: broken-thing"):
        run_scenario(scenario)


def test_a_missing_command_raises_bench_error() -> None:
    scenario = Scenario("missing", "", (Contender("docker", ["/nonexistent/berth-bench-tool"]),),
                        rounds=1, warmup=0, sync=False)
    with pytest.raises(BenchError, match="cannot start"):
        run_scenario(scenario)


def test_argv_samples_carry_cpu_and_rss_and_stdout_goes_where_asked(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    result = run_scenario(Scenario("echo", "", (Contender("docker", ["echo", "hi"], stdout=out),),
                                   rounds=1, warmup=0, sync=False))
    sample = result.engine("docker").samples[0]
    assert sample.user is not None and sample.sys is not None
    assert sample.max_rss_kib is not None and sample.max_rss_kib > 0
    client_cpu = result.engine("docker").client_cpu()
    assert client_cpu is not None and client_cpu.median == pytest.approx(sample.user + sample.sys)
    assert out.read_text() == "hi\n"


def test_daemon_cpu_is_sampled_around_the_action() -> None:
    def burn() -> None:
        end = process_cpu_seconds(os.getpid())
        assert end is not None
        while (process_cpu_seconds(os.getpid()) or 0.0) - end < 0.05:
            pass

    result = run_scenario(Scenario("cpu", "", (Contender("docker", burn, daemon_pid=os.getpid),),
                                   rounds=1, warmup=0, sync=False))
    cpu = result.engine("docker").daemon_cpu()
    assert cpu is not None and cpu.median >= 0.05


def test_process_cpu_of_a_gone_pid_is_none() -> None:
    assert process_cpu_seconds(2**22 + 12345) is None


def test_result_json_holds_ratios_stats_samples_and_machine(tmp_path: Path) -> None:
    scenario = Scenario("json", "round trip", (
        Contender("berth", ["true"], client="berth CLI"),
        Contender("docker", ["sleep", "0.02"], client="docker CLI"),
    ), rounds=2, warmup=1, sync=False)
    result = run_scenario(scenario, notes={"image_size": 123})
    path = write_result(result, tmp_path / "results")
    assert path.parent == tmp_path / "results" and path.name.startswith("json-") and path.suffix == ".json"
    data = json.loads(path.read_text())
    assert data["scenario"] == "json" and data["baseline"] == "docker"
    assert data["notes"] == {"image_size": 123}
    assert data["machine"]["nproc"] == os.cpu_count()
    assert data["machine"]["mem_total_mib"] > 0
    berth = data["engines"][0]
    assert berth["name"] == "berth" and berth["client"] == "berth CLI"
    assert len(berth["samples"]) == 3 and berth["wall"]["n"] == 2
    docker_median = data["engines"][1]["wall"]["median"]
    assert data["ratios"]["berth/docker"] == pytest.approx(berth["wall"]["median"] / docker_median)
    # A second write in the same second does not overwrite the first.
    again = write_result(result, tmp_path / "results")
    assert again != path and again.exists() and path.exists()
    assert not list((tmp_path / "results").glob(".*.tmp"))


def test_table_names_every_engine_and_the_ratio() -> None:
    text = format_table(_result({"berth": [3.0, 3.0], "docker": [2.0, 2.0]}))
    assert "berth" in text and "docker" in text
    assert "ratio of medians berth/docker: 1.50" in text


def test_report_picks_the_newest_result_per_scenario_and_renders_ratios(tmp_path: Path) -> None:
    from bench.report import latest_results, markdown

    def result(started: str, berth: float) -> Result:
        engines = (EngineResult("berth", "berth CLI", (Sample(0, berth),)),
                   EngineResult("docker", "docker CLI", (Sample(0, 2.0),)))
        return Result("load", "", started, Machine.current(), "docker", (), engines)

    old = write_result(result("2026-01-01T00:00:00+00:00", 4.0), tmp_path)
    new = write_result(result("2026-01-02T00:00:00+00:00", 1.0), tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    assert latest_results(tmp_path) == [new] and old.exists()
    table = markdown([json.loads(new.read_text())])
    assert "| load | berth (berth CLI) | 1.00 s | 1.00 s - 1.00 s | - | 1 | **0.50** |" in table
    assert "| load | docker (docker CLI) | 2.00 s |" in table
