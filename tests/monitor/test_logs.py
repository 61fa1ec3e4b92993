"""The log a real monitor writes: Docker's json-file lines, rotation at max-size, nothing lost while nobody is
attached, and the final partial line."""

from __future__ import annotations

import json
import re

import pytest

from tests.monitor.conftest import Monitors

pytestmark = pytest.mark.root


def test_output_nobody_attached_to_is_logged_in_dockers_format(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "echo '<b>&'; printf 'no newline' >&2"])
    c.start()
    c.exited()
    lines = c.log_file.read_bytes().splitlines()
    assert lines[0].startswith(b'{"log":"\\u003cb\\u003e\\u0026\\n","stream":"stdout","time":"')
    entries = [json.loads(line) for line in lines]
    assert [(e["log"], e["stream"]) for e in entries] == [("<b>&\n", "stdout"), ("no newline", "stderr")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in entries)


def test_the_log_rotates_at_max_size_keeping_max_file_files(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); done"],
                       log_max_size=2000, log_max_file=3)
    c.start()
    c.exited()
    names = sorted(p.name for p in c.dir.iterdir() if "-json.log" in p.name)
    cid = c.options.container_id
    assert names == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    kept = []
    for suffix in (".2", ".1", ""):
        path = c.dir / f"{cid}-json.log{suffix}"
        assert path.stat().st_size < 2000 + 100
        kept += [json.loads(line)["log"] for line in path.read_text().splitlines()]
    numbers = [int(text[4:]) for text in kept]
    assert numbers == list(range(numbers[0], 1000))


def test_a_restarted_container_appends_to_its_log(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "echo run"])
    c.start()
    c.exited()
    again = monitors.options(["true"])
    # the same container (id, dir, bundle) started again, as `docker start` does
    c2 = monitors.made[-1]
    from berth.monitor import MonitorOptions

    c2.options = MonitorOptions(c.options.container_id, c.options.bundle, c.options.state_root,
                                c.options.container_dir, again.socket)
    c2.monitor_pid = monitors.launch(c2.options)
    assert not c2.exit_file.exists()
    c2.start()
    assert c2.exited()["exit_code"] == 0
    assert [e["log"] for e in c2.log_entries()] == ["run\n", "run\n"]
