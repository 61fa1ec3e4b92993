"""Events: what happened to containers, images, volumes and networks, with Docker's names ("create", "start",
"die", "health_status: healthy", "tag", ...), kept in an on-disk journal (berth.util.journal, under
`<root>/events/`) so `since` reaches back across daemon restarts, and fanned out in memory to live subscribers
by the same emit, so a subscriber is woken at once and never polls the file.

Other services call `emit(type, action, actor_id, attributes)`; `container(c, action)` and `image(...)` add the
attributes Docker puts on those. Filters follow dockerd's daemon/events/filter.go: exact match for type, event
and scope; prefix or name match for container, volume, network, daemon; image by id, name or name without tag;
labels as key or key=value over the attributes.

May import: berth.engine.containers, berth.util, berth.errors.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from berth.engine.containers import Container
from berth.errors import InvalidArgument
from berth.util.journal import DEFAULT_MAX_BYTES, Journal

log = logging.getLogger("berthd")

FILTER_KEYS = frozenset({"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
                         "scope", "secret", "service", "type", "volume"})
# `event=health_status` must match "health_status: healthy" (moby #25798): these match by prefix
_PREFIX_EVENTS = frozenset({"health_status", "exec_create", "exec_start"})
_DECODE = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class Event:
    type: str                   # container | image | volume | network | daemon | ...
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"

    def to_record(self) -> dict[str, Any]:
        """The journal's line (berth's own format; the wire format lives in berth.api.events)."""
        return {"t": self.time_nano, "type": self.type, "action": self.action, "id": self.actor_id,
                "attrs": dict(self.attributes), "scope": self.scope}

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> Event:
        attrs = raw.get("attrs") or {}
        if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
            raise ValueError("attrs must be an object of strings")
        return cls(str(raw["type"]), str(raw["action"]), str(raw["id"]), attrs, int(raw["t"]),
                   str(raw.get("scope") or "local"))


def _strip_tag(name: str) -> str:
    head, _, last = name.rpartition("/")
    if "@" in last:
        return name.partition("@")[0]
    if ":" in last:
        return f"{head}/{last.partition(':')[0]}" if head else last.partition(":")[0]
    return name


@dataclass(frozen=True, slots=True)
class EventFilter:
    given: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, given: Mapping[str, Sequence[str]]) -> EventFilter:
        for key in given:
            if key not in FILTER_KEYS:
                raise InvalidArgument(f"invalid filter '{key}'")
        return cls({k: tuple(v) for k, v in given.items() if v})

    def _exact(self, key: str, *values: str) -> bool:
        wanted = self.given.get(key)
        return wanted is None or any(v in wanted for v in values)

    def _fuzzy(self, key: str, *values: str) -> bool:
        wanted = self.given.get(key)
        return wanted is None or any(v and (v == w or v.startswith(w)) for w in wanted for v in values)

    def _event(self, ev: Event) -> bool:
        wanted = self.given.get("event")
        if wanted is None:
            return True
        if any(w in _PREFIX_EVENTS for w in wanted):
            return any(ev.action == w or ev.action.startswith(w) for w in wanted)
        return ev.action in wanted

    def _labels(self, attributes: Mapping[str, str]) -> bool:
        for item in self.given.get("label", ()):
            key, sep, value = item.partition("=")
            if key not in attributes or (sep and attributes[key] != value):
                return False
        return True

    def _image(self, ev: Event) -> bool:
        if "image" not in self.given:
            return True
        name = ev.attributes.get("name" if ev.type == "image" else "image", "")
        return self._exact("image", ev.actor_id, name, _strip_tag(ev.actor_id), _strip_tag(name))

    def _named(self, key: str, ev: Event) -> bool:
        """container=, volume=, network=, daemon=: this kind of object only, by id prefix or name."""
        if key not in self.given:
            return True
        return ev.type == key and self._fuzzy(key, ev.actor_id, ev.attributes.get("name", ""))

    def matches(self, ev: Event) -> bool:
        return (self._event(ev) and self._exact("type", ev.type) and self._exact("scope", ev.scope)
                and self._named("daemon", ev) and self._named("container", ev) and self._named("volume", ev)
                and self._named("network", ev) and self._image(ev) and self._labels(ev.attributes)
                and all(key not in self.given for key in ("plugin", "node", "service", "secret", "config")))


Deliver = Callable[[Event], None]


class EventService:
    """root None: no journal (events reach live subscribers only; for tests of other services)."""

    def __init__(self, root: Path | None, clock_ns: Callable[[], int] = time.time_ns,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._journal = Journal(root / "journal.jsonl", max_bytes) if root is not None else None
        self._clock_ns = clock_ns
        self._lock = threading.Lock()          # one order for the journal and the subscribers
        self._subscribers: dict[int, Deliver] = {}
        self._next = 0
        self._opened_ns = clock_ns()
        self.skipped = 0                       # journal lines that did not parse (torn by a crash, or corrupt)

    # -- producing ---------------------------------------------------------------------------------------

    def emit(self, type: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None,
             time_nano: int | None = None) -> Event:
        """Record and publish one event. Never raises for the journal's sake: an event that cannot be written
        is logged and still delivered live."""
        attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
        with self._lock:    # the time is taken under the lock: the journal's order is the times' order
            ev = Event(type, action, actor_id, attrs, time_nano if time_nano is not None else self._clock_ns())
            line = json.dumps(ev.to_record(), separators=(",", ":")).encode()
            if self._journal is not None:
                try:
                    self._journal.append(line)
                except OSError as exc:
                    log.warning("cannot append %s %s to the event journal: %s", type, action, exc)
            for deliver in list(self._subscribers.values()):
                try:
                    deliver(ev)
                except Exception:     # a subscriber's bug must not stop the engine's operation
                    log.exception("event subscriber failed")
        return ev

    def happened_at(self, t_ns: int | None) -> int | None:
        """The time to give an event that happened at t_ns (an exit the monitor recorded): kept when it predates
        this daemon (an exit reconciled after a restart), else None = now, so that live events keep the order
        in which berthd saw them (a fast exit is recorded by its monitor before berthd emits its start)."""
        return t_ns if t_ns is not None and t_ns < self._opened_ns else None

    def container(self, c: Container, action: str, extra: Mapping[str, str] | None = None,
                  time_nano: int | None = None) -> Event:
        """Docker's container attributes: the labels, then image (as the user named it) and name."""
        attrs = {**c.config.labels, **(extra or {}), "image": c.config.image, "name": c.name}
        return self.emit("container", action, c.id, attrs, time_nano)

    def image(self, action: str, image_id: str, name: str, labels: Mapping[str, str] | None = None) -> Event:
        """pull/push: the reference ("busybox:latest") and its name; tag: the image id and the new tag;
        untag/delete/load/save/import: the image id twice, as dockerd writes them."""
        return self.emit("image", action, image_id, {**(labels or {}), "name": name})

    def image_removals(self, removed: Sequence[tuple[str, object]], image_ids: Collection[str]) -> None:
        """An image removal's or prune's ("Untagged", ref) / ("Deleted", id) list as dockerd logs it: untag and
        delete, each naming the image id. image_ids: the images that existed before (a "Deleted" entry may be a
        layer, which has no event); an untag takes the id of the image deletion after it (a prune lists its
        removals image by image), else the id given for it."""
        for i, (kind, value) in enumerate(removed):
            if kind == "Deleted":
                if str(value) in image_ids:
                    self.image("delete", str(value), str(value))
                continue
            image_id = next((str(v) for k, v in removed[i:] if k == "Deleted" and str(v) in image_ids),
                            next(iter(image_ids), str(value)) if len(image_ids) == 1 else str(value))
            self.image("untag", image_id, image_id)

    def volume(self, action: str, name: str, driver: str = "local", extra: Mapping[str, str] | None = None) -> Event:
        """create, destroy: {"driver"}; mount: also container, destination, propagation, "read/write";
        unmount: container. The actor is the volume's name."""
        return self.emit("volume", action, name, {**(extra or {}), "driver": driver})

    def network(self, action: str, network_id: str, name: str, driver: str = "bridge",
                container_id: str = "") -> Event:
        """create, destroy: {"name", "type"}; connect, disconnect: also "container" (its full id)."""
        attrs = {"name": name, "type": driver}
        if container_id:
            attrs["container"] = container_id
        return self.emit("network", action, network_id, attrs)

    # -- consuming ---------------------------------------------------------------------------------------

    def history(self, since_ns: int | None, until_ns: int | None) -> list[Event]:
        """Journaled events with since <= time <= until, oldest first (by time: a `die` recorded late, after a
        daemon restart, sorts where it happened)."""
        if self._journal is None:
            return []
        out = self._parse(self._journal.lines(), since_ns, until_ns)
        out.sort(key=lambda e: e.time_nano)
        return out

    def _parse(self, lines: Iterable[bytes], since_ns: int | None, until_ns: int | None) -> list[Event]:
        out: list[Event] = []
        low = since_ns if since_ns is not None else -1
        high = until_ns if until_ns is not None else 1 << 80
        for line in lines:
            # Every line starts {"t":<ns>, (to_record's first key): skip by time before parsing the rest
            comma = line.find(b",", 5)
            if line.startswith(b'{"t":') and comma > 0 and line[5:comma].isdigit():
                t = int(line[5:comma])
                if t < low or t > high:
                    continue
            try:
                ev = Event.from_record(_DECODE(line.decode()))
            except (ValueError, KeyError, TypeError):
                self.skipped += 1
                continue
            if low <= ev.time_nano <= high:
                out.append(ev)
        return out

    def subscribe(self, since_ns: int | None, until_ns: int | None,
                  deliver: Deliver | None) -> tuple[list[Event], Callable[[], None]]:
        """The history Docker would replay (none unless since or until is given), and, if deliver is given,
        a live subscription that starts exactly after it: no event is lost or seen twice. Returns the history
        and the function that ends the subscription."""
        replay = since_ns is not None or until_ns is not None
        past: list[Event] = []
        if replay and self._journal is not None:
            # the bulk without the lock (emitters are not held up), then only the tail appended meanwhile under it
            lines, mark = self._journal.read()
            past = self._parse(lines, since_ns, until_ns)
        with self._lock:
            if replay and self._journal is not None:
                past += self._parse(self._journal.read_after(mark), since_ns, until_ns)
                past.sort(key=lambda e: e.time_nano)
            if deliver is None:
                return past, lambda: None
            key = self._next
            self._next += 1
            self._subscribers[key] = deliver

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)
        return past, unsubscribe

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def journal_size(self) -> int:
        return self._journal.size() if self._journal is not None else 0


def rfc3339_to_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nine fractional digits (without a zone: local
    time, as the docker CLI reads it); None if unparseable."""
    value = text.strip().replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    head, dot, tail = value.partition(".")
    nanos = 0
    if dot:
        digits = ""
        for ch in tail:
            if not ch.isdigit():
                break
            digits += ch
        if not digits or len(digits) > 9:
            return None
        nanos = int(digits.ljust(9, "0"))
        value = head + tail[len(digits):]
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return int(when.timestamp()) * 1_000_000_000 + nanos


def exec_action(kind: str, argv: Sequence[str]) -> str:
    """Docker's exec event names: "exec_create: <entrypoint> <args joined by spaces>" (a trailing space when
    there are no arguments, as dockerd writes it)."""
    return f"{kind}: {argv[0] if argv else ''} {' '.join(argv[1:])}"
