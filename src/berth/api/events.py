"""GET /events: Docker's event stream. History from the engine's journal when `since` or `until` is given, then
live events until the client goes away or `until` passes; one JSON object per line, flushed per event.

`since` and `until`: unix seconds (with a fraction), RFC 3339, or a Go duration meaning "that long ago" (the docker
CLI converts durations itself; berth accepts them on the wire too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any

from aiohttp import web

from berth.api.app import Router, engine_of, prepare_headers
from berth.api.params import filters
from berth.api.streams import blocking
from berth.engine.events import Event, EventFilter, rfc3339_to_ns
from berth.errors import InvalidArgument

log = logging.getLogger("berthd")
_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}
MAX_PENDING = 10_000  # events queued for one client that is not reading
_CHECK_CLIENT = 1.0   # seconds between checks that an idle subscriber's client is still there


def parse_event_time(text: str, now_ns: int) -> int | None:
    """Nanoseconds since the epoch, or None for an empty value."""
    value = text.strip()
    if not value:
        return None
    m = _UNIX.match(value)
    if m:
        return int(m.group(1)) * 10**9 + int((m.group(2) or "0").ljust(9, "0"))
    duration = _go_duration(value)
    if duration is not None:
        return now_ns - duration
    when = rfc3339_to_ns(value if ("T" in value or " " in value) else value + "T00:00:00")
    if when is None:
        raise InvalidArgument(f"failed to parse value as time or duration: {json.dumps(text)}")   # Go's %q
    return when


def _go_duration(value: str) -> int | None:
    sign = -1 if value.startswith("-") else 1
    body = value.lstrip("+-")
    pos, total = 0, 0.0
    if not body:
        return None
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if not m:
            return None
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return sign * int(total)


def event_json(ev: Event) -> dict[str, Any]:
    """dockerd's events.Message: the legacy status/id/from for containers and images, then the rest."""
    out: dict[str, Any] = {}
    if ev.type in ("container", "image"):
        out["status"] = ev.action
        out["id"] = ev.actor_id
        if ev.type == "container" and ev.attributes.get("image"):
            out["from"] = ev.attributes["image"]
    out["Type"] = ev.type
    out["Action"] = ev.action
    out["Actor"] = {"ID": ev.actor_id, "Attributes": dict(sorted(ev.attributes.items()))}
    out["scope"] = ev.scope
    out["time"] = ev.time_nano // 10**9
    out["timeNano"] = ev.time_nano
    return out


def _line(ev: Event) -> bytes:
    return json.dumps(event_json(ev), separators=(",", ":")).encode() + b"\n"


async def events(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    now = time.time_ns()
    since_text, until_text = request.query.get("since", ""), request.query.get("until", "")
    since = parse_event_time(since_text, now)
    until = parse_event_time(until_text, now)
    if since is not None and until is not None and until < since:
        raise InvalidArgument(f"`since` time ({since_text}) cannot be after `until` time ({until_text})")
    wanted = EventFilter.parse(filters(request))
    only_past = until is not None and until < now
    loop = asyncio.get_running_loop()
    # bounded: a client that stops reading is dropped (its stream ends) rather than holding events without end
    queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=MAX_PENDING + 1)

    def deliver(ev: Event) -> None:     # called on the emitting thread, under the engine's event lock
        if wanted.matches(ev):
            loop.call_soon_threadsafe(_offer, queue, ev)

    past, unsubscribe = await blocking(lambda: engine.events.subscribe(since, until, None if only_past else deliver))
    try:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        prepare_headers(resp)
        await resp.prepare(request)     # headers at once, before any event exists (the CLI waits for them)
        with contextlib.suppress(ConnectionError):
            for ev in past:
                if wanted.matches(ev):
                    await resp.write(_line(ev))
            if not only_past:
                await _stream(request, resp, queue, until)
            await resp.write_eof()
        return resp
    finally:
        unsubscribe()


def _offer(queue: asyncio.Queue[Event | None], ev: Event) -> None:
    """On the event loop: queue ev, or past MAX_PENDING the None that ends a lagging client's stream."""
    if queue.qsize() < MAX_PENDING:
        queue.put_nowait(ev)
    elif not queue.full():
        queue.put_nowait(None)


async def _stream(request: web.Request, resp: web.StreamResponse, queue: asyncio.Queue[Event | None],
                  until: int | None) -> None:
    """Live events as they come (a `since` in the future filters nothing here, as in dockerd)."""
    while True:
        timeout = _CHECK_CLIENT
        if until is not None:
            left = (until - time.time_ns()) / 1e9
            if left <= 0:
                return
            timeout = min(timeout, left)
        try:
            ev = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return     # the client went away while nothing happened
            continue
        if ev is None:
            log.warning("an events client fell %d events behind; ending its stream", MAX_PENDING)
            return
        if until is not None and ev.time_nano > until:
            return
        await resp.write(_line(ev))


def register(router: Router) -> None:
    router.add("GET", "/events", events)
