"""The monitor's pure parts, no root needed: the json-file log (splitting, escaping, rotation), the options, the
request parser and Docker's stream framing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.errors import Conflict, InvalidArgument
from berth.monitor.listen import listen_unix
from berth.monitor.logfile import LINE_LIMIT, JsonLog, encode_entry, timestamp
from berth.monitor.options import MonitorOptions, parse_args
from berth.monitor.protocol import Attach, Resize, Start, Status, Wait, frame, parse_request, read_frames

BASE = ["--id", "c1", "--bundle", "/b", "--state-root", "/s", "--dir", "/d", "--socket", "/run/c1.sock"]


def entries(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_output_is_logged_one_entry_per_line_as_docker_splits_it(tmp_path: Path) -> None:
    log = JsonLog(str(tmp_path / "c-json.log"))
    log.write("stdout", b"one\ntw")
    log.write("stdout", b"o\nthree")
    log.write("stderr", b"err\n")
    log.close()
    got = entries(tmp_path / "c-json.log")
    assert [(e["log"], e["stream"]) for e in got] == [("one\n", "stdout"), ("two\n", "stdout"),
                                                    ("err\n", "stderr"), ("three", "stdout")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in got)
    assert list(got[0]) == ["log", "stream", "time"]


def test_a_line_longer_than_16_kib_is_logged_in_pieces(tmp_path: Path) -> None:
    log = JsonLog(str(tmp_path / "c-json.log"))
    log.write("stdout", b"a" * (LINE_LIMIT * 2 + 10) + b"\n")
    log.write("stdout", b"b" * LINE_LIMIT)  # no newline, but the buffer is full: written now
    got = entries(tmp_path / "c-json.log")
    assert [len(e["log"]) for e in got] == [LINE_LIMIT, LINE_LIMIT, 11, LINE_LIMIT]
    log.close()
    assert len(entries(tmp_path / "c-json.log")) == 4  # nothing left to flush


def test_log_text_is_escaped_like_gos_encoder() -> None:
    line = encode_entry(b"<a href='x'>&</a>\t\x01\xff\xe2\x80\xa8\"\\\n", "stdout", "T")
    assert line == (b'{"log":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e\\t\\u0001\xef\xbf\xbd\\u2028'
                    b'\\"\\\\\\n","stream":"stdout","time":"T"}\n')
    assert json.loads(line)["log"] == "<a href='x'>&</a>\t\x01\ufffd\u2028\"\\\n"


def test_non_ascii_text_is_kept_as_utf8() -> None:
    assert "héllo ✓".encode() in encode_entry("héllo ✓\n".encode(), "stdout", "T")


def test_rotation_keeps_max_file_files_of_about_max_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonLog(str(path), max_size=500, max_file=3)
    for i in range(200):
        log.write("stdout", b"line %03d\n" % i)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    kept = entries(path.with_name("c-json.log.2")) + entries(path.with_name("c-json.log.1")) + entries(path)
    numbers = [int(e["log"].split()[1]) for e in kept]
    assert numbers == list(range(numbers[0], 200))  # the newest lines, in order, none lost between files
    for p in tmp_path.iterdir():
        size = p.stat().st_size
        assert size < 500 + 100  # rotation happens before the write that would follow a full file


def test_rotation_with_one_file_empties_it(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonLog(str(path), max_size=200, max_file=1)
    for i in range(50):
        log.write("stdout", b"line %03d\n" % i)
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert entries(path)[-1]["log"] == "line 049\n"
    assert len(entries(path)) < 50


def test_a_reopened_log_appends_and_counts_its_existing_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    JsonLog(str(path)).close()
    first = JsonLog(str(path), max_size=300, max_file=2)
    first.write("stdout", b"x" * 280 + b"\n")
    first.close()
    second = JsonLog(str(path), max_size=300, max_file=2)
    second.write("stdout", b"after restart\n")
    second.close()
    assert entries(path.with_name("c-json.log.1"))[0]["log"].startswith("xxx")
    assert entries(path)[0]["log"] == "after restart\n"


def test_timestamps_have_nine_fraction_digits() -> None:
    assert timestamp(1_700_000_000_000_000_042) == "2023-11-14T22:13:20.000000042Z"


def test_options_round_trip_through_the_command_line() -> None:
    opts = MonitorOptions("c1", "/b", "/s", "/d", "/run/c1.sock", tty=True, stdin=True, stdin_once=True,
                          log_max_size=1000, log_max_file=3, runtime="runc", ready_fd=3)
    assert parse_args(opts.to_argv()) == opts
    assert parse_args(BASE) == MonitorOptions("c1", "/b", "/s", "/d", "/run/c1.sock")
    assert parse_args([*BASE, "--log-max-size=10"]).log_max_size == 10
    assert opts.log_path == "/d/c1-json.log"


@pytest.mark.parametrize(("argv", "message"), [
    (BASE[2:], "missing monitor option: --id"),
    ([*BASE, "--log-max-size", "ten"], "--log-max-size expects an integer"),
    ([*BASE, "--log-max-size", "0"], "max-size must be positive"),
    ([*BASE, "--log-max-file", "0"], "max-file must be at least 1"),
    ([*BASE, "--stdin-once"], "--stdin-once needs --stdin"),
    ([*BASE, "--runtime", "docker"], "unknown runtime 'docker'"),
    ([*BASE, "--bogus"], "unknown monitor option '--bogus'"),
    ([*BASE, "--socket"], "--socket needs a value"),
    (["--id", "", *BASE[2:]], "container_id is empty"),
])
def test_bad_options_are_refused_with_a_reason(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_args(argv)


def test_requests_parse_into_typed_values() -> None:
    assert parse_request(b'{"op":"attach","stdin":true,"stdout":false}') == Attach(True, False, True)
    assert parse_request(b'{"op":"start"}') == Start()
    assert parse_request(b'{"op":"resize","height":24,"width":80}') == Resize(24, 80)
    assert parse_request(b'{"op":"wait"}') == Wait()
    assert parse_request(b'{"op":"status"}') == Status()


@pytest.mark.parametrize("line", [b"", b"{", b"null", b'{"op":1}', b'{"op":"resize","height":24}',
                                  b'{"op":"resize","height":70000,"width":80}', b'{"op":"attach","stderr":1}'])
def test_bad_requests_are_invalid_arguments(line: bytes) -> None:
    with pytest.raises(InvalidArgument):
        parse_request(line)


def test_frames_round_trip_and_a_partial_frame_waits_for_more() -> None:
    data = frame(1, b"hello") + frame(2, b"") + frame(2, b"x" * 70000)
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x05"
    frames, rest = read_frames(data + frame(1, b"tail")[:6])
    assert frames == [(1, b"hello"), (2, b""), (2, b"x" * 70000)]
    assert rest == frame(1, b"tail")[:6]


def test_a_listening_socket_is_born_0600_and_never_takes_over_a_live_one(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    first = listen_unix(path, "a monitor")
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        with pytest.raises(Conflict, match="a monitor already listens on"):
            listen_unix(path, "a monitor")
    finally:
        first.close()
    second = listen_unix(path, "a monitor")  # the file is stale now: replaced
    second.close()
    with pytest.raises(InvalidArgument, match="longer than the 107 bytes"):
        listen_unix(str(tmp_path / ("x" * 120)), "a monitor")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from("ab\n<&é✓\t\"\\"), max_size=3000),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
       limit=st.sampled_from([-1, 300]))
def test_the_log_holds_exactly_the_output_however_it_was_chunked(tmp_path_factory: pytest.TempPathFactory,
                                                                  text: str, cuts: list[int], limit: int) -> None:
    directory = tmp_path_factory.mktemp("log")
    path = directory / "c-json.log"
    data = text.encode()
    log = JsonLog(str(path), max_size=limit, max_file=1000)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        log.write("stdout", data[start:end])
    log.close()
    files = sorted(directory.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    got = [e for f in files for e in entries(f)]
    # chunks may cut through a multi-byte character only where a line is split: nowhere, lines are short here
    assert "".join(e["log"] for e in got) == text
    assert all(e["log"].endswith("\n") for e in got[:-1])
    assert all(e["stream"] == "stdout" for e in got)
