"""`berth events` (and `system events`): the daemon's event stream, printed as docker prints it.

Without --format each event is one line: local RFC 3339 time with nanoseconds, Type, Action, Actor ID and the
sorted attributes in parentheses; --format runs a Go template on each event (`json` for the raw JSON).
May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import time

from berth.cli.containers import parse_filters, timestamp_arg
from berth.cli.context import Ctx
from berth.cli.formatter import FormatError
from berth.cli.gotemplate import Template, TemplateError
from berth.cli.gotypes import JsonStruct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def nano_time(ns: int) -> str:
    """Go's "2006-01-02T15:04:05.000000000Z07:00" in local time."""
    seconds, frac = divmod(ns, 1_000_000_000)
    t = time.localtime(seconds)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}" + zone


def event_line(event: dict[str, Any]) -> str:
    when = ""
    if event.get("timeNano"):
        when = nano_time(int(event["timeNano"])) + " "
    elif event.get("time"):
        when = nano_time(int(event["time"]) * 1_000_000_000) + " "
    actor = event.get("Actor") or {}
    line = f"{when}{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line + "\n"


def run_events(ctx: Ctx, a: argparse.Namespace) -> int:
    tmpl = None
    if a.format:
        try:
            tmpl = Template("{{json .}}" if a.format == "json" else a.format)
        except TemplateError as exc:
            raise FormatError(f"template parsing error: {exc}", exit_code=64) from exc
    now = time.time()
    query = {"since": timestamp_arg(a.since, now) or None, "until": timestamp_arg(a.until, now) or None,
             "filters": parse_filters(a.filter) or None}
    for event in ctx.client.stream_json("GET", "/events", query):
        if not isinstance(event, dict):
            continue
        if tmpl is None:
            ctx.out.write(event_line(event))
        else:
            try:
                ctx.out.write(tmpl.execute(JsonStruct(event, "events.Message")) + "\n")
            except TemplateError as exc:
                raise FormatError(f"template parsing error: {exc}") from exc
        ctx.out.flush()
    return 0
