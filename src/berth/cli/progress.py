"""A progress stream (pull, push, load, import) shown on a terminal as docker does: one line per layer id, updated
in place, with a bar and byte counts while it moves; lines without an id printed above them.

Imported only when the output is a terminal (rich costs ~60 ms to import), by `formatter.display_stream`.
May import: rich, berth.cli.formatter's error type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text


class _WhenCounted(ProgressColumn):
    """A column drawn only for a layer with byte counters: "Already exists" gets no empty bar, as in docker."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self.inner = inner

    def render(self, task: Task) -> RenderableType:
        return self.inner.render(task) if task.total is not None else Text("")


def display_tty(messages: Iterable[Any], out: TextIO, aux: list[Any] | None, error: type[Exception]) -> None:
    console = Console(file=out, force_terminal=True, highlight=False, soft_wrap=True)
    columns = (TextColumn("{task.fields[layer]}: {task.description}"), _WhenCounted(BarColumn(bar_width=50)),
               _WhenCounted(DownloadColumn(binary_units=False)))
    tasks: dict[str, TaskID] = {}
    with Progress(*columns, console=console, transient=False, refresh_per_second=8) as progress:
        for msg in messages:
            if not isinstance(msg, dict):
                continue
            err = msg.get("errorDetail") or ({"message": msg["error"]} if msg.get("error") else None)
            if err:
                raise error(str(err.get("message") or msg.get("error")))
            if "aux" in msg:
                if aux is not None:
                    aux.append(msg["aux"])
                continue
            layer = str(msg.get("id") or "")
            status = str(msg.get("status") or "")
            if not layer:
                text = str(msg.get("stream") or status)
                if text:
                    progress.console.print(text.rstrip("\n"), markup=False)
                continue
            detail = msg.get("progressDetail") or {}
            if layer not in tasks:
                tasks[layer] = progress.add_task(status, layer=layer, total=None, start=False)
            task = tasks[layer]
            if detail.get("total"):
                progress.start_task(task)
                progress.update(task, description=status, total=float(detail["total"]),
                                completed=float(detail.get("current") or 0))
            else:   # a status without counters ("Pull complete", "Already exists"): the bar is done or not needed
                total = next(t.total for t in progress.tasks if t.id == task)
                progress.update(task, description=status, completed=total)
