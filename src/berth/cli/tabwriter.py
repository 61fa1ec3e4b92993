"""Column alignment as docker's tabwriter (a fork of Go's text/tabwriter) with flags 0 and a space pad.

Cells end at a tab; the text after a line's last tab is not aligned. A column block is a run of consecutive
lines that all have a cell in that column; its width is the widest cell plus padding, at least minwidth.
A line with no tab ends every block (Go flushes there).

May import: the standard library, berth.cli.units.
"""

from __future__ import annotations

from berth.cli.units import display_width


def align(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Format text the way `tabwriter.NewWriter(out, minwidth, 1, padding, ' ', 0)` + Flush would."""
    out: list[str] = []
    lines: list[list[str]] = []  # each: cells; the last element is the trailing (non-tab-terminated) text
    raw_lines = text.split("\n")
    for i, raw in enumerate(raw_lines):
        cells = raw.split("\t")
        lines.append(cells)
        last = i == len(raw_lines) - 1
        if len(cells) == 1 and not last:
            # a line without tabs: Go's tabwriter flushes everything so far, including this line
            _format(lines, out, minwidth, padding, final=False)
            lines = []
    _format(lines, out, minwidth, padding, final=True)
    return "".join(out)


def _format(lines: list[list[str]], out: list[str], minwidth: int, padding: int, final: bool) -> None:
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            for j, cell in enumerate(cells[:-1]):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - display_width(cell)))
            out.append(cells[-1])
            if not (final and i + 1 == len(lines)):
                out.append("\n")

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, display_width(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
