"""Query-parameter parsing the way Docker clients send it (booleans as 1/0/true/True, filters as JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from berth.errors import InvalidArgument

_FALSE = {"", "0", "false", "no", "none"}


def boolean(request: web.Request, name: str, default: bool = False) -> bool:
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in _FALSE


def integer(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r} is not an integer") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """`{"status":{"running":true}}` (docker CLI) or `{"label":["k=v"]}` (docker-py): both become lists."""
    text = request.query.get("filters", "")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"invalid filters {text!r}: expected JSON") from None
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"invalid filters {text!r}: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, Mapping):
            out[str(key)] = [str(k) for k, v in value.items() if v]
        elif isinstance(value, list):
            out[str(key)] = [str(v) for v in value]
        else:
            out[str(key)] = [str(value)]
    return out


def check_filters(given: Mapping[str, list[str]], allowed: set[str]) -> None:
    for key in given:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
