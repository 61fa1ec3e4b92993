"""docker's human sizes and durations (go-units), IDs, ellipsis and Go's time formats."""

from __future__ import annotations

import os
import time

import pytest

from berth.cli.units import ellipsis, go_time_string, human_duration, human_size, rfc3339, truncate_id


@pytest.mark.parametrize(("size", "precision", "expected"), [
    (0, 3, "0B"), (1, 3, "1B"), (999, 3, "999B"), (1000, 3, "1kB"), (1985562, 3, "1.99MB"), (4_260_000, 3, "4.26MB"),
    (1_200_000_000, 3, "1.2GB"), (1985562, 4, "1.986MB"), (999_999, 3, "1e+03kB"), (10**24, 3, "1YB"),
    (10**27, 3, "1e+03YB"), (512_000, 4, "512kB"), (1_234_567_890_123, 4, "1.235TB"),
])
def test_human_size_matches_go_units(size: int, precision: int, expected: str) -> None:
    assert human_size(size, precision) == expected


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "Less than a second"), (0.99, "Less than a second"), (1, "1 second"), (1.5, "1 second"), (2, "2 seconds"),
    (59.9, "59 seconds"), (60, "About a minute"), (119, "About a minute"), (120, "2 minutes"),
    (59 * 60 + 59, "59 minutes"), (3600, "About an hour"), (5399, "About an hour"), (5400, "2 hours"),
    (47 * 3600 + 1799, "47 hours"), (47 * 3600 + 1800, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"), (729 * 86400, "24 months"),
    (730 * 86400, "2 years"), (3650 * 86400, "10 years"),
])
def test_human_duration_matches_go_units(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_truncate_id_drops_the_algorithm_and_keeps_twelve() -> None:
    assert truncate_id("sha256:" + "ab" * 32) == "ab" * 6
    assert truncate_id("abcdef") == "abcdef"
    assert truncate_id("<missing>") == "<missing>"


@pytest.mark.parametrize(("text", "width", "expected"), [
    ("short", 45, "short"), ("x" * 45, 45, "x" * 45), ("x" * 46, 45, "x" * 44 + "…"), ("abc", 1, "a"),
    ("abc", 0, ""), ("日本語のテキスト", 7, "日本語…"), ("日本", 4, "日本"),
])
def test_ellipsis_counts_display_columns(text: str, width: int, expected: str) -> None:
    assert ellipsis(text, width) == expected


def test_go_time_formats_in_utc() -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        assert go_time_string(1_700_000_000) == "2023-11-14 22:13:20 +0000 UTC"
        assert rfc3339(1_700_000_000) == "2023-11-14T22:13:20Z"
        os.environ["TZ"] = "CET-1"
        time.tzset()
        assert rfc3339(1_700_000_000) == "2023-11-14T23:13:20+01:00"
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
