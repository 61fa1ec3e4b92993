"""Template functions: Go's builtins (index, len, slice, printf, eq, and, ...) and docker's (json, join, ...).

May import: the standard library, berth.cli.gotemplate.values.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable

from berth.cli.gotemplate.values import (
    NO_VALUE,
    ArgTypeError,
    GoNil,
    RawDict,
    RawList,
    go_float,
    go_json,
    go_print,
    go_type_name,
    truthy,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any


def _index(item: Any, *keys: Any) -> Any:
    if item is NO_VALUE or item is None:
        raise ValueError("index of untyped nil")
    for key in keys:
        if isinstance(item, dict):
            # a typed map[string]string yields "" for a missing key; an untyped map, nil
            missing = NO_VALUE if isinstance(item, RawDict) else ""
            item = item.get(key, missing) if not isinstance(key, GoNil) else missing
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise IndexError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else ord(item[key])
        elif isinstance(item, GoNil) and item.kind == "map":
            item = ""
        else:
            raise ValueError(f"can't index item of type {go_type_name(item)}")
    return item


def _len(item: Any) -> int:
    if isinstance(item, GoNil):
        return 0
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | dict):
        return len(item)
    raise ValueError(f"len of type {go_type_name(item)}")


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise ValueError("missing argument for comparison")
    return any(_cmp_value(a) == _cmp_value(b) for b in others)


def _cmp_value(v: Any) -> Any:
    return None if isinstance(v, GoNil) else v


def _ordered(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
            raise ValueError("incompatible types for comparison")
        return op(a, b)
    compare.__name__ = name
    return compare


def _and(*args: Any) -> Any:
    for a in args:
        if not truthy(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truthy(a):
            return a
    return args[-1]


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %s %v %d %q %t %x %X %f %e %g %c and %%, with flags/width."""
    out: list[str] = []
    it = iter(args)
    pos = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        try:
            arg = next(it)
        except StopIteration:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_pad(_format_verb(verb, arg, prec), flags, width))
    out.append(fmt[pos:])
    extra = list(it)
    if extra:
        out.append("%!(EXTRA " + ", ".join(f"{go_type_name(x)}={go_print(x)}" for x in extra) + ")")
    return "".join(out)


def _format_verb(verb: str, arg: Any, prec: str | None) -> str:
    if verb in "sv":
        text = go_print(arg)
        return text[: int(prec)] if prec and verb == "s" else text
    if verb == "q":
        return json.dumps(go_print(arg), ensure_ascii=False)
    if verb == "d" and isinstance(arg, int):
        return str(arg)
    if verb == "t" and isinstance(arg, bool):
        return "true" if arg else "false"
    if verb in "xX":
        text = format(arg, "x") if isinstance(arg, int) else go_print(arg).encode().hex()
        return text.upper() if verb == "X" else text
    if verb in "feEgG" and isinstance(arg, int | float):
        p = 6 if prec is None else int(prec)
        if verb in "gG" and prec is None:
            return go_float(float(arg))
        return format(float(arg), f".{p}{verb}")
    if verb == "c" and isinstance(arg, int):
        return chr(arg)
    return f"%!{verb}({go_type_name(arg)}={go_print(arg)})"


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width or width == "*":
        return text
    w = int(width)
    if "-" in flags:
        return text.ljust(w)
    if "0" in flags and text.lstrip("-").replace(".", "").isdigit():
        return text.rjust(w, "0")
    return text.rjust(w)


def _print(*args: Any) -> str:
    # fmt.Sprint adds spaces between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_print(a)
    return out


def _slice(item: Any, *idx: int) -> Any:
    if not idx:
        return item
    if len(idx) == 1:
        return item[idx[0]:]
    return item[idx[0]:idx[1]]  # a third index (capacity) does not change the elements


def _join(items: Any, sep: str) -> str:
    if isinstance(items, GoNil) and items is not NO_VALUE:
        return ""
    if isinstance(items, RawList) or not isinstance(items, list | tuple):
        got = "[]interface {}" if isinstance(items, RawList) else \
            "interface {}" if items is NO_VALUE else go_type_name(items)
        raise ArgTypeError(f"wrong type for value; expected []string; got {got}", 0)
    return sep.join(go_print(x) for x in items)


def _title(s: str) -> str:
    return re.sub(r"(^|(?<=[^\w']))(\w)", lambda m: m.group(2).upper(), s)


def _truncate(s: str, n: int) -> str:
    return s if len(s) < n else s[:n]


def _pad_fn(s: str, prefix: int, suffix: int) -> str:
    return s if s == "" else " " * prefix + s + " " * suffix


BUILTINS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "len": _len,
    "slice": _slice,
    "printf": go_sprintf,
    "print": _print,
    "println": lambda *a: " ".join(go_print(x) for x in a) + "\n",
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered("lt", lambda a, b: a < b),
    "le": _ordered("le", lambda a, b: a <= b),
    "gt": _ordered("gt", lambda a, b: a > b),
    "ge": _ordered("ge", lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda a: not truthy(a),
    "urlquery": lambda *a: urllib.parse.quote_plus(_print(*a)),
}

DOCKER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "split": lambda s, sep: s.split(sep) if sep else list(s),
    "join": lambda items, sep: _join(items, sep),
    "title": _title,
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "pad": _pad_fn,
    "truncate": _truncate,
}

# docker renders a table's header row by running the same template on the header names with these stand-ins.
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v,
    "split": lambda v, _sep: v,
    "join": lambda v, _sep: v,
    "title": lambda v: v,
    "lower": lambda v: v,
    "upper": lambda v: v,
    "truncate": lambda v, _n: v,
}
