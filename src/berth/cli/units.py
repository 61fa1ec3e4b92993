"""Human-readable sizes and durations exactly as docker prints them (docker/go-units semantics), and IDs.

May import: the standard library, berth.util.humanize (human_duration lives there, shared with the API).
"""

from __future__ import annotations

import time
import unicodedata

from berth.util.humanize import human_duration

__all__ = ["human_duration"]  # re-exported: callers keep importing it from here

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `%.*g` ("1.99MB", "0B", "512kB")."""
    value = float(size)
    i = 0
    while value >= 1000.0 and i < len(_DECIMAL) - 1:
        value /= 1000.0
        i += 1
    return f"{value:.{precision}g}{_DECIMAL[i]}"


def since(created_unix: float, now: float | None = None) -> str:
    """ "N minutes ago" for a unix timestamp."""
    return human_duration((time.time() if now is None else now) - created_unix) + " ago"


def truncate_id(image_id: str) -> str:
    """docker's stringid.TruncateID: drop an `algo:` prefix, keep 12 characters."""
    _, sep, tail = image_id.partition(":")
    short = tail if sep else image_id
    return short[:12]


def char_width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(0 if unicodedata.combining(c) else char_width(c) for c in text)


def ellipsis(text: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: cut to max_width display columns, the last one being '…'."""
    if max_width <= 0:
        return ""
    if max_width == 1:
        return text[:1]
    if text.isascii():
        return text if len(text) <= max_width else text[: max_width - 1] + "…"
    total = 0
    cut = None
    for i, ch in enumerate(text):
        total += char_width(ch)
        if cut is None and total > max_width - 1:
            cut = i
    if total <= max_width:
        return text
    return text[: cut or 0] + "…"


def go_time_string(unix: float) -> str:
    """Go's time.Time.String() of a unix second in local time: "2026-11-28 02:17:00 +0000 UTC"."""
    t = time.localtime(int(unix))
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + (t.tm_zone or "")


def rfc3339(unix: float) -> str:
    """Go's time.RFC3339 in local time: "2026-11-28T02:17:00Z" or "...+02:00"."""
    t = time.localtime(int(unix))
    off = t.tm_gmtoff or 0
    if off == 0:
        zone = "Z"
    else:
        sign = "+" if off > 0 else "-"
        zone = f"{sign}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + zone
