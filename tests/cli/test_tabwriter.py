"""docker's tabwriter (minwidth 10, padding 3): column blocks, trailing cells, wide characters."""

from __future__ import annotations

from berth.cli.tabwriter import align


def test_columns_are_the_widest_cell_plus_padding_and_at_least_minwidth() -> None:
    text = "REPOSITORY\tTAG\tIMAGE ID\nbusybox\tlatest\t82490038ab64\nberth-layered\t1\t5bab8a4416e2\n"
    assert align(text) == (
        "REPOSITORY      TAG       IMAGE ID\n"
        "busybox         latest    82490038ab64\n"
        "berth-layered   1         5bab8a4416e2\n"
    )


def test_the_last_cell_of_a_line_is_not_padded_but_a_tab_terminated_empty_cell_is() -> None:
    assert align("a\tb\t\nc\td\t\n") == "a         b         \nc         d         \n"


def test_a_line_without_tabs_ends_the_column_block() -> None:
    text = "a\tb\nplain line\nlonger-cell-here\tc\n"
    assert align(text) == "a         b\nplain line\nlonger-cell-here   c\n"


def test_blocks_follow_lines_that_have_the_column() -> None:
    # the third column only exists on the first two lines, so only they align on it
    text = "x\ty\tz\nxx\tyy\tzz\nxxx\n"
    assert align(text) == "x         y         z\nxx        yy        zz\nxxx\n"


def test_wide_characters_count_two_columns() -> None:
    assert align("日本\tx\nab\ty\n") == "日本      x\nab        y\n"


def test_header_only_and_empty_input() -> None:
    assert align("A\tB\n") == "A         B\n"
    assert align("") == ""
