"""Go values for templates: how they print (fmt's %v), marshal (encoding/json) and test true, and the errors.

May import: the standard library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any


class TemplateError(Exception):
    """A template that does not parse, or fails while executing. str() is Go's message."""


class GoNil:
    """A typed Go nil: prints as `[]` (slice), `map[]` (map) or `<nil>` (pointer/interface); JSON null."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"GoNil({self.kind})"


NO_VALUE = GoNil("novalue")  # a missing map key under missingkey=default, or an untyped nil


class GoValue:
    """A value with Go semantics of its own (a typed struct, a time.Time): see berth.cli.gotypes."""

    type_name = "struct"

    def lookup(self, name: str) -> tuple[bool, Any]:
        return False, None

    def go_string(self) -> str:
        raise NotImplementedError

    def json_value(self) -> Any:
        raise NotImplementedError

    def truthy(self) -> bool:
        return True


class RawList(list["Any"]):
    """A JSON array as Go's interface{} decoding gives it ([]interface {}): functions wanting []string refuse it."""


class RawDict(dict[str, "Any"]):
    """A JSON object as Go's interface{} decoding gives it (map[string]interface {}): a missing key is nil."""


class ArgTypeError(Exception):
    """A function got a value of the wrong Go type; Go reports it at the argument, not the call."""


class Method:
    """A formatter method that takes arguments, like ContainerContext.Label(name): a Record field whose value is a
    Method is called with the template's arguments (`{{.Label "k"}}`)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def call(self, *args: Any) -> Any:
        return self.fn(*args)


class Record:
    """A formatter context (an image row, a history row): named fields, lazily computed, and a Go type name
    for error messages. `{{json .}}` gives every field, keys sorted, HTML-escaped as Go's json.Marshal."""

    def __init__(self, type_name: str, fields: Mapping[str, Callable[[], Any]]) -> None:
        self.type_name = type_name
        self._fields = dict(fields)

    def has(self, name: str) -> bool:
        return name in self._fields

    def get(self, name: str) -> Any:
        return self._fields[name]()

    def as_dict(self) -> dict[str, Any]:
        """The fields `{{json .}}` shows: methods taking arguments are not among them (as in Go)."""
        values = {k: self._fields[k]() for k in sorted(self._fields)}
        return {k: v for k, v in values.items() if not isinstance(v, Method)}


# ---- printing ------------------------------------------------------------------------------------------------

def go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64) as fmt's %v prints it."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    digits = repr(f).lower()
    mant, _, exp_s = digits.partition("e")
    exp = int(exp_s) if exp_s else 0
    neg = mant.startswith("-")
    mant = mant.lstrip("-")
    int_part, _, frac = mant.partition(".")
    if frac == "0":
        frac = ""
    all_digits = (int_part + frac).lstrip("0")
    point = len(int_part) + exp  # decimal point position relative to the digits of int_part+frac
    lead_zeros = len(int_part + frac) - len((int_part + frac).lstrip("0"))
    point -= lead_zeros
    all_digits = all_digits.rstrip("0") or "0"
    x = point - 1
    sign = "-" if neg else ""
    if x < -4 or x >= 6:  # fmt's %v: shortest digits, exponent form outside [-4, 6)
        m = all_digits[0] + ("." + all_digits[1:] if len(all_digits) > 1 else "")
        return f"{sign}{m}e{'+' if x >= 0 else '-'}{abs(x):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{all_digits}"
    if point >= len(all_digits):
        return sign + all_digits + "0" * (point - len(all_digits))
    return f"{sign}{all_digits[:point]}.{all_digits[point:]}"


def go_print(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "<nil>"
    if isinstance(v, GoNil):
        return {"slice": "[]", "map": "map[]", "novalue": "<no value>"}.get(v.kind, "<nil>")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_print(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_print(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, Record):
        return "&{" + " ".join(go_print(x) for x in v.as_dict().values()) + "}"
    if isinstance(v, GoValue):
        return v.go_string()
    return str(v)


def to_json_value(v: Any) -> Any:
    """A template value as plain JSON data (typed nils become null, typed structs apply omitempty)."""
    if isinstance(v, GoNil):
        return None
    if isinstance(v, Record):
        return {k: to_json_value(x) for k, x in v.as_dict().items()}
    if isinstance(v, GoValue):
        return v.json_value()
    if isinstance(v, RawList):
        return [to_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [to_json_value(x) for x in v]
    return v


_plain = to_json_value


def go_json(v: Any) -> str:
    """docker's `json` template function: Go's encoder with HTML escaping off; a Record marshals itself (with
    Go's default HTML escaping, which the encoder keeps)."""
    if isinstance(v, Record):
        text = json.dumps(_plain(v), ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return json.dumps(_plain(v), ensure_ascii=False, separators=(",", ":"))


def truthy(v: Any) -> bool:
    if isinstance(v, GoNil) or v is None:
        return False
    if isinstance(v, GoValue):
        return v.truthy()
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | list | tuple | dict):
        return len(v) > 0
    return True


def go_type_name(v: Any) -> str:
    if v is NO_VALUE or v is None:
        return "<nil>"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    return "interface {}"
