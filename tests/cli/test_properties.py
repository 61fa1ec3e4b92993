"""Properties of the output helpers over generated input (hypothesis)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from berth.cli.formatter import json_compact, json_indent
from berth.cli.gotemplate import go_float
from berth.cli.tabwriter import align
from berth.cli.units import display_width, human_size

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_indent_and_compact_keep_the_json_value_and_its_text(value: Any) -> None:
    raw = json.dumps(value, separators=(",", ":"))
    indented = json_indent(raw)
    assert json.loads(indented) == value
    assert json_compact(indented) == raw
    assert json_indent(indented) == indented


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_round_trips(f: float) -> None:
    assert float(go_float(f)) == f or (f == 0 and math.copysign(1, f) < 0)


@given(st.integers(min_value=0, max_value=10**26))
def test_human_size_has_at_most_three_significant_digits(n: int) -> None:
    text = human_size(n, 3)
    digits = text.rstrip("kMGTPEZYB").split("e")[0].replace(".", "").lstrip("0")
    assert len(digits) <= 3


cells = st.text(alphabet="abcXYZ019-:/日本", min_size=1, max_size=12)  # no spaces: cells are easy to find


@given(st.lists(st.lists(cells, min_size=2, max_size=4), min_size=1, max_size=6))
def test_aligned_columns_start_at_the_same_display_column(rows: list[list[str]]) -> None:
    width = max(len(r) for r in rows)
    rows = [r + ["x"] * (width - len(r)) for r in rows]
    out = align("".join("\t".join(r) + "\n" for r in rows))
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 1
    starts: list[list[int]] = []
    for line, row in zip(lines, rows, strict=False):
        assert line.split() == row
        pos, cols = 0, []
        for cell in row:
            pos = line.index(cell, pos)
            cols.append(display_width(line[:pos]))
            pos += len(cell)
        starts.append(cols)
    for col in range(width):
        assert len({s[col] for s in starts}) == 1
        if col:
            widest = max(display_width(r[col - 1]) for r in rows)
            assert starts[0][col] - starts[0][col - 1] == max(10, widest + 3)
