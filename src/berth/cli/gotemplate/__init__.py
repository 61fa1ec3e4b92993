"""A Go text/template subset, for docker-compatible `--format` strings.

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; fields `.A.B`, `.`, `$`,
`$var.Field`; string (interpreted and raw), number, bool and nil literals; parenthesised pipelines; pipes `|`;
`{{if}}/{{else if}}/{{else}}/{{end}}`, `{{range}}` (with `$i, $v :=` and `{{else}}`), `{{with}}`; variable
declaration and assignment; docker's functions (json, split, join, title, lower, upper, pad, truncate) and Go's
builtins (index, len, slice, printf, print, println, eq, ne, lt, le, gt, ge, and, or, not, urlquery).
Values print as Go's fmt does: lists as `[a b]`, maps as `map[k:v]` (sorted keys), nil slices as `[]`.

Errors read like Go's: `template: :1:2: executing "" at <.Nope>: ...`.
values (printing, JSON, truth), parse, execute, funcs; this module has Template, the entry point.
May import: the standard library, its own submodules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from berth.cli.gotemplate.execute import _State
from berth.cli.gotemplate.funcs import BUILTINS, DOCKER_FUNCS, HEADER_FUNCS, go_sprintf
from berth.cli.gotemplate.parse import _Parser
from berth.cli.gotemplate.values import (
    NO_VALUE,
    ArgTypeError,
    GoNil,
    GoValue,
    Method,
    RawDict,
    RawList,
    Record,
    TemplateError,
    go_float,
    go_json,
    go_print,
    to_json_value,
    truthy,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any

__all__ = [
    "ArgTypeError", "BUILTINS", "DOCKER_FUNCS", "GoNil", "GoValue", "HEADER_FUNCS", "Method", "NO_VALUE", "RawDict", "RawList",
    "Record", "Template", "TemplateError", "go_float", "go_json", "go_print", "go_sprintf", "parse", "to_json_value",
    "truthy",
]


class Template:
    def __init__(self, source: str, funcs: Mapping[str, Callable[..., Any]] | None = None, name: str = "") -> None:
        self.source = source
        self.name = name
        self.funcs: dict[str, Callable[..., Any]] = {**BUILTINS, **DOCKER_FUNCS, **(funcs or {})}
        self._nodes = _Parser(source, self.funcs, name).parse()

    def run(self, data: Any) -> tuple[str, TemplateError | None]:
        """Execute; return what was written (all of it, or up to the failure) and the failure, if any."""
        out: list[str] = []
        state = _State(self, data, out, False, self.funcs)
        try:
            state.walk(self._nodes, data)
        except TemplateError as exc:
            return "".join(out), exc
        return "".join(out), None

    def execute(self, data: Any, *, missing_key_error: bool = False,
                funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
        out: list[str] = []
        state = _State(self, data, out, missing_key_error, {**self.funcs, **(funcs or {})})
        state.walk(self._nodes, data)
        return "".join(out)

    def execute_partial(self, data: Any, funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
        """Execute and keep whatever was written before an error (Go leaves a partial buffer)."""
        out: list[str] = []
        state = _State(self, data, out, False, {**self.funcs, **(funcs or {})})
        try:
            state.walk(self._nodes, data)
        except TemplateError:
            pass
        return "".join(out)


def parse(source: str) -> Template:
    return Template(source)
