"""Executing a parsed template against data, with Go's semantics for fields, variables, pipes and branches.

May import: the standard library, berth.cli.gotemplate.values, berth.cli.gotemplate.parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from berth.cli.gotemplate.parse import _Action, _Arg, _Branch, _Cmd, _Node, _Pipe, _Text
from berth.cli.gotemplate.values import (
    NO_VALUE,
    ArgTypeError,
    GoNil,
    GoValue,
    Method,
    Record,
    TemplateError,
    go_print,
    go_type_name,
    truthy,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any

    from berth.cli.gotemplate import Template


class _State:
    def __init__(self, tmpl: Template, root: Any, out: list[str], strict: bool,
                 funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.tmpl, self.out, self.strict, self.funcs = tmpl, out, strict, funcs
        self.vars: list[tuple[str, Any]] = [("$", root)]

    def fail(self, node: _Node, what: str, msg: str) -> TemplateError:
        src = self.tmpl.source
        pos = max(node.pos, 0)
        line = src.count("\n", 0, pos) + 1
        col = pos - (src.rfind("\n", 0, pos) + 1)
        name = self.tmpl.name
        return TemplateError(f'template: {name}:{line}:{col}: executing "{name}" at <{what}>: {msg}')

    def walk(self, nodes: Sequence[_Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(go_print(value))
            elif isinstance(node, _Branch):
                mark = len(self.vars)
                try:
                    self.branch(node, dot)
                finally:
                    del self.vars[mark:]

    def branch(self, node: _Branch, dot: Any) -> None:
        if node.kind == "range":
            self.range(node, dot)
            return
        value = self.pipe(node.pipe, dot, declare=node.kind == "with")
        if truthy(value):
            self.walk(node.body, value if node.kind == "with" else dot)
        else:
            self.walk(node.orelse, dot)

    def range(self, node: _Branch, dot: Any) -> None:
        pipe = node.pipe
        value = self.pipe(_Pipe(pipe.pos, [], False, pipe.cmds), dot)
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif isinstance(value, GoNil) or value is None:
            items = []
        else:
            raise self.fail(pipe, str(pipe), f"range can't iterate over {go_print(value)}")
        if not items:
            self.walk(node.orelse, dot)
            return
        for key, elem in items:
            mark = len(self.vars)
            if len(pipe.decl) == 1:
                self.vars.append((pipe.decl[0], elem))
            elif len(pipe.decl) == 2:
                self.vars.append((pipe.decl[0], key))
                self.vars.append((pipe.decl[1], elem))
            self.walk(node.body, elem)
            del self.vars[mark:]

    def pipe(self, pipe: _Pipe, dot: Any, declare: bool = True) -> Any:
        value: Any = _MISSING_ARG
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if pipe.decl and declare:
            if pipe.assign:
                for idx in range(len(self.vars) - 1, -1, -1):
                    if self.vars[idx][0] == pipe.decl[0]:
                        self.vars[idx] = (pipe.decl[0], value)
                        break
                else:
                    raise self.fail(pipe, pipe.decl[0], f"undefined variable: {pipe.decl[0]}")
            else:
                self.vars.append((pipe.decl[0], value))
        return value

    def command(self, cmd: _Cmd, dot: Any, piped: Any) -> Any:
        first = cmd.args[0]
        if first.kind == "ident":
            fn = self.funcs[first.name]
            args = [self.arg(a, dot) for a in cmd.args[1:]]
            if piped is not _MISSING_ARG:
                args.append(piped)
            try:
                return fn(*args)
            except TemplateError:
                raise
            except ArgTypeError as exc:
                index = exc.args[1] if len(exc.args) > 1 else 0
                at = cmd.args[1 + index] if 1 + index < len(cmd.args) else first
                raise self.fail(at, str(at), str(exc.args[0])) from exc
            except TypeError as exc:
                raise self.fail(first, first.name, f"wrong number of args for {first.name}: {exc}") from exc
            except (ValueError, IndexError, KeyError) as exc:
                raise self.fail(first, str(cmd), f"error calling {first.name}: {exc}") from exc
        if len(cmd.args) > 1 or piped is not _MISSING_ARG:
            target = self.arg(first, dot) if first.kind == "field" else None
            if isinstance(target, Method):   # {{.Label "com.example.key"}}: a formatter method with arguments
                args = [self.arg(x, dot) for x in cmd.args[1:]]
                if piped is not _MISSING_ARG:
                    args.append(piped)
                try:
                    return target.call(*args)
                except TypeError as exc:
                    raise self.fail(first, str(first), f"wrong number of args for {first}: {exc}") from exc
            what = str(cmd.args[0])
            raise self.fail(first, what, f"can't give argument to non-function {what}")
        value = self.arg(first, dot)
        if isinstance(value, Method):
            return value.call()
        return value

    def arg(self, a: _Arg, dot: Any) -> Any:
        if a.kind == "dot":
            return dot
        if a.kind == "lit":
            return a.value
        if a.kind == "ident":
            return self.command(_Cmd(a.pos, [a]), dot, _MISSING_ARG)
        if a.kind == "field":
            return self.chain(a, dot, a.chain)
        if a.kind == "var":
            for name, value in reversed(self.vars):
                if name == a.name:
                    return self.chain(a, value, a.chain)
            raise self.fail(a, a.name, f"undefined variable: {a.name}")
        assert a.pipe is not None
        return self.chain(a, self.pipe(a.pipe, dot), a.chain)

    def chain(self, node: _Arg, value: Any, names: Sequence[str]) -> Any:
        for name in names:
            value = self.field(node, value, name)
        return value

    def field(self, node: _Arg, value: Any, name: str) -> Any:
        if isinstance(value, Record):
            if value.has(name):
                return value.get(name)
            raise self.fail(node, str(node), f"can't evaluate field {name} in type {value.type_name}")
        if isinstance(value, GoValue):
            found, result = value.lookup(name)
            if found:
                return result
            raise self.fail(node, str(node), f"can't evaluate field {name} in type {value.type_name}")
        if isinstance(value, dict):
            if name in value:
                return value[name]
            if self.strict:
                raise self.fail(node, str(node), f'map has no entry for key "{name}"')
            return NO_VALUE
        if value is NO_VALUE:
            raise self.fail(node, str(node), f"nil pointer evaluating interface {{}}.{name}")
        if value is None or isinstance(value, GoNil):
            raise self.fail(node, str(node), f"nil pointer evaluating {value.kind if value else 'interface {}'}.{name}")
        go_type = "interface {}" if self.strict else go_type_name(value)  # raw JSON values are all interface {}
        raise self.fail(node, str(node), f"can't evaluate field {name} in type {go_type}")


class _Missing:
    pass


_MISSING_ARG: Any = _Missing()
