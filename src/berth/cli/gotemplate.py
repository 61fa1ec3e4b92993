"""A Go text/template subset, for docker-compatible `--format` strings.

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; fields `.A.B`, `.`, `$`,
`$var.Field`; string (interpreted and raw), number, bool and nil literals; parenthesised pipelines; pipes `|`;
`{{if}}/{{else if}}/{{else}}/{{end}}`, `{{range}}` (with `$i, $v :=` and `{{else}}`), `{{with}}`; variable
declaration and assignment; docker's functions (json, split, join, title, lower, upper, pad, truncate) and Go's
builtins (index, len, slice, printf, print, println, eq, ne, lt, le, gt, ge, and, or, not, urlquery).
Values print as Go's fmt does: lists as `[a b]`, maps as `map[k:v]` (sorted keys), nil slices as `[]`.

Errors read like Go's: `template: :1:2: executing "" at <.Nope>: ...`.
May import: the standard library.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence

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
        return {k: self._fields[k]() for k in sorted(self._fields)}


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
        return v.as_dict()
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


# ---- lexing and parsing --------------------------------------------------------------------------------------

# Parse-tree classes are plain slotted classes: dataclasses would cost ~15 ms of imports on every CLI call.

class _Tok:
    __slots__ = ("kind", "text", "pos", "value", "start")

    def __init__(self, kind: str, text: str, pos: int, value: Any = None, start: int = -1) -> None:
        self.kind = kind  # field var dot str num bool nil ident lparen rparen pipe decl assign comma
        self.text = text
        self.pos = pos
        self.value = value
        self.start = start  # where the token begins, when pos (Go's error position) differs


class _Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text


class _Arg(_Node):
    __slots__ = ("kind", "name", "chain", "value", "pipe")

    def __init__(self, pos: int, kind: str, name: str = "", chain: tuple[str, ...] = (), value: Any = None,
                 pipe: _Pipe | None = None) -> None:
        super().__init__(pos)
        self.kind = kind  # dot field var lit ident pipe
        self.name, self.chain, self.value, self.pipe = name, chain, value, pipe

    def __str__(self) -> str:
        if self.kind == "dot":
            return "."
        if self.kind == "field":
            return "." + ".".join(self.chain)
        if self.kind == "var":
            return self.name + "".join("." + c for c in self.chain)
        if self.kind == "ident":
            return self.name
        if self.kind == "pipe":
            return "(" + str(self.pipe) + ")" + "".join("." + c for c in self.chain)
        return json.dumps(self.value) if isinstance(self.value, str) else go_print(self.value)


class _Cmd(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[_Arg]) -> None:
        super().__init__(pos)
        self.args = args

    def __str__(self) -> str:
        return " ".join(str(a) for a in self.args)


class _Pipe(_Node):
    __slots__ = ("decl", "assign", "cmds")

    def __init__(self, pos: int, decl: list[str], assign: bool, cmds: list[_Cmd]) -> None:
        super().__init__(pos)
        self.decl, self.assign, self.cmds = decl, assign, cmds

    def __str__(self) -> str:
        head = (", ".join(self.decl) + (" = " if self.assign else " := ")) if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        super().__init__(pos)
        self.pipe = pipe


class _Branch(_Node):
    __slots__ = ("kind", "pipe", "body", "orelse")

    def __init__(self, pos: int, kind: str, pipe: _Pipe) -> None:
        super().__init__(pos)
        self.kind = kind  # if range with
        self.pipe = pipe
        self.body: list[_Node] = []
        self.orelse: list[_Node] = []


_NUM = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO]?[0-7_]+|(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)")


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


class _Parser:
    def __init__(self, src: str, funcs: Mapping[str, Any], name: str = "") -> None:
        self.src = src
        self.funcs = funcs
        self.name = name

    def line(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def fail(self, pos: int, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.line(pos)}: {msg}")

    def parse(self) -> list[_Node]:
        items = self._split()
        root: list[_Node] = []
        stack: list[tuple[_Branch, list[_Node]]] = []
        cur = root
        for kind, text, pos in items:
            if kind == "text":
                cur.append(_Text(pos, text))
                continue
            toks = self._lex(text, pos)
            if not toks:
                raise self.fail(pos, "missing value for command")
            head = toks[0]
            if head.kind == "ident" and head.text in ("if", "range", "with"):
                branch = _Branch(pos, head.text, self._pipe(toks[1:], pos, head.text))
                cur.append(branch)
                stack.append((branch, cur))
                cur = branch.body
            elif head.kind == "ident" and head.text == "else":
                if not stack:
                    raise self.fail(pos, "unexpected {{else}}")
                branch = stack[-1][0]
                if cur is branch.orelse:
                    raise self.fail(pos, "expected end; found {{else}}")
                if len(toks) > 1 and toks[1].kind == "ident" and toks[1].text in ("if", "with"):
                    # {{else if x}} is {{else}}{{if x}}...{{end}} sharing the outer {{end}}
                    inner = _Branch(pos, toks[1].text, self._pipe(toks[2:], pos, toks[1].text))
                    branch.orelse.append(inner)
                    stack[-1] = (branch, stack[-1][1])
                    stack.append((inner, branch.orelse))
                    cur = inner.body
                    inner.pos = -1  # marks an else-chain link closed by the same {{end}}
                elif len(toks) > 1:
                    raise self.fail(pos, f"unexpected {toks[1].text!r} in else")
                else:
                    cur = branch.orelse
            elif head.kind == "ident" and head.text == "end":
                if not stack:
                    raise self.fail(pos, "unexpected {{end}}")
                while True:
                    branch, cur = stack.pop()
                    if branch.pos != -1:
                        break
            elif head.kind == "ident" and head.text in ("define", "template", "block", "break", "continue"):
                raise self.fail(pos, f"{{{{{head.text}}}}} is not supported by berth's templates")
            else:
                cur.append(_Action(pos, self._pipe(toks, pos, "command")))
        if stack:
            raise self.fail(len(self.src), "unexpected EOF")
        return root

    def _split(self) -> list[tuple[str, str, int]]:
        src, i, items = self.src, 0, []
        trim_next = False
        while i < len(src):
            j = src.find("{{", i)
            if j < 0:
                text = src[i:]
                items.append(("text", text.lstrip() if trim_next else text, i))
                break
            text = src[i:j]
            if trim_next:
                text = text.lstrip()
            inner_start = j + 2
            if src.startswith("- ", inner_start) or src.startswith("-\t", inner_start) or src.startswith(
                    "-\n", inner_start):
                text = text.rstrip()
                inner_start += 1
            if text:
                items.append(("text", text, i))
            end = self._action_end(inner_start)
            if end < 0:
                raise self.fail(j, "unclosed action")
            inner_end = end
            trim_next = False
            if end - 1 >= inner_start and src[end - 1] == "-" and end - 2 >= inner_start and src[end - 2] in " \t\n":
                trim_next = True
                inner_end = end - 1
            inner = src[inner_start:inner_end]
            if not inner.strip().startswith("/*"):
                items.append(("action", inner, inner_start))
            elif not inner.strip().endswith("*/"):
                raise self.fail(j, "unclosed comment")
            i = end + 2
        return items

    def _action_end(self, i: int) -> int:
        src = self.src
        while i < len(src):
            c = src[i]
            if src.startswith("}}", i):
                return i
            if c in "\"`'":
                close = src.find(c, i + 1) if c == "`" else self._quote_end(i, c)
                if close < 0:
                    kind = "raw quoted string" if c == "`" else "quoted string" if c == '"' else "character constant"
                    raise self.fail(i, f"unterminated {kind}")
                i = close + 1
                continue
            i += 1
        return -1

    def _quote_end(self, i: int, q: str) -> int:
        j = i + 1
        while j < len(self.src):
            if self.src[j] == "\\":
                j += 2
                continue
            if self.src[j] == q:
                return j
            if self.src[j] == "\n":
                return -1
            j += 1
        return -1

    def _lex(self, text: str, base: int) -> list[_Tok]:
        toks: list[_Tok] = []
        i = 0
        while i < len(text):
            c = text[i]
            pos = base + i
            if c in " \t\r\n":
                i += 1
            elif c == "(":
                toks.append(_Tok("lparen", c, pos))
                i += 1
            elif c == ")":
                toks.append(_Tok("rparen", c, pos))
                i += 1
            elif c == "|":
                toks.append(_Tok("pipe", c, pos))
                i += 1
            elif c == ",":
                toks.append(_Tok("comma", c, pos))
                i += 1
            elif text.startswith(":=", i):
                toks.append(_Tok("decl", ":=", pos))
                i += 2
            elif c == "=":
                toks.append(_Tok("assign", "=", pos))
                i += 1
            elif c == '"':
                end = i + 1
                while end < len(text) and text[end] != '"':
                    end += 2 if text[end] == "\\" else 1
                if end >= len(text):
                    raise self.fail(pos, "unterminated quoted string")
                raw = text[i:end + 1]
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = raw[1:-1].encode().decode("unicode_escape")
                toks.append(_Tok("str", raw, pos, value))
                i = end + 1
            elif c == "`":
                end = text.find("`", i + 1)
                if end < 0:
                    raise self.fail(pos, "unterminated raw quoted string")
                toks.append(_Tok("str", text[i:end + 1], pos, text[i + 1:end]))
                i = end + 1
            elif c == "." and toks and toks[-1].kind in ("ident", "bool", "nil") and \
                    toks[-1].pos + len(toks[-1].text) == pos:
                raise self.fail(pos, "unexpected <.> in operand")
            elif c == "." and (i + 1 >= len(text) or not (text[i + 1].isalpha() or text[i + 1] == "_")):
                if i + 1 < len(text) and text[i + 1].isdigit():
                    m = _NUM.match(text, i)
                    assert m is not None
                    toks.append(_Tok("num", m.group(0), pos, float(m.group(0))))
                    i = m.end()
                else:
                    toks.append(_Tok("dot", ".", pos))
                    i += 1
            elif c == "." or c == "$":
                m = re.compile(r"(\$\w*)?((\.\w+)*)").match(text, i)
                assert m is not None
                kind = "var" if c == "$" else "field"
                chain = tuple(p for p in (m.group(2) or "").split(".") if p)
                # Go places a chain `.A.B` (or `$x.A`) at its second link, which is where errors point
                start = pos
                if kind == "field" and len(chain) > 1:
                    pos += len(chain[0]) + 1
                elif kind == "var" and chain:
                    pos += len(m.group(1) or "")
                toks.append(_Tok(kind, m.group(0), pos, (m.group(1) or "", chain), start))
                i = m.end()
            elif c.isdigit() or (c in "+-" and i + 1 < len(text) and text[i + 1].isdigit()):
                m = _NUM.match(text, i)
                assert m is not None and m.group(0)
                lit = m.group(0).replace("_", "")
                try:
                    num: Any = int(lit, 0)
                except ValueError:
                    num = float(lit)
                toks.append(_Tok("num", m.group(0), pos, num))
                i = m.end()
            elif c.isalpha() or c == "_":
                m = re.compile(r"\w+").match(text, i)
                assert m is not None
                word = m.group(0)
                if word in ("true", "false"):
                    toks.append(_Tok("bool", word, pos, word == "true"))
                elif word == "nil":
                    toks.append(_Tok("nil", word, pos, None))
                else:
                    toks.append(_Tok("ident", word, pos))
                i = m.end()
            else:
                raise self.fail(pos, f"unexpected {c!r} in command")
        return toks

    def _pipe(self, toks: list[_Tok], pos: int, context: str) -> _Pipe:
        decl: list[str] = []
        assign = False
        k = 0
        # `$x :=`, `$i, $v :=`, `$x =`
        if toks and toks[0].kind == "var" and not toks[0].value[1]:
            names = [toks[0].text]
            j = 1
            if j < len(toks) and toks[j].kind == "comma" and j + 1 < len(toks) and toks[j + 1].kind == "var":
                names.append(toks[j + 1].text)
                j += 2
            if j < len(toks) and toks[j].kind in ("decl", "assign"):
                decl, assign, k = names, toks[j].kind == "assign", j + 1
        cmds: list[_Cmd] = []
        args: list[_Arg] = []
        rest = toks[k:]
        i = 0
        while i < len(rest):
            t = rest[i]
            if t.kind == "pipe":
                if not args:
                    raise self.fail(t.pos, "missing command")
                cmds.append(_Cmd(args[0].pos, args))
                args = []
                i += 1
                continue
            arg, i = self._operand(rest, i)
            args.append(arg)
        if args:
            cmds.append(_Cmd(args[0].pos, args))
        if not cmds:
            raise self.fail(pos, f"missing value for {context}")
        for c in cmds[1:]:
            if c.args[0].kind in ("lit",):
                raise self.fail(c.pos, f"non executable command in pipeline stage {cmds.index(c) + 1}")
        return _Pipe(pos, decl, assign, cmds)

    def _operand(self, toks: list[_Tok], i: int) -> tuple[_Arg, int]:
        t = toks[i]
        if t.kind == "dot":
            return _Arg(t.pos, "dot"), i + 1
        if t.kind == "field":
            return _Arg(t.pos, "field", chain=t.value[1]), i + 1
        if t.kind == "var":
            return _Arg(t.pos, "var", name=t.value[0], chain=t.value[1]), i + 1
        if t.kind in ("str", "num", "bool", "nil"):
            return _Arg(t.pos, "lit", value=t.value), i + 1
        if t.kind == "ident":
            if t.text not in self.funcs:
                raise self.fail(t.pos, f'function "{t.text}" not defined')
            return _Arg(t.pos, "ident", name=t.text), i + 1
        if t.kind == "lparen":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                depth += {"lparen": 1, "rparen": -1}.get(toks[j].kind, 0)
                j += 1
            if depth:
                raise self.fail(t.pos, "unclosed left paren")
            inner = self._pipe(toks[i + 1:j - 1], t.pos, "parenthesized pipeline")
            chain: tuple[str, ...] = ()
            if j < len(toks) and toks[j].kind == "field" and toks[j].start == toks[j - 1].pos + 1:
                chain = toks[j].value[1]
                j += 1
            return _Arg(t.pos, "pipe", pipe=inner, chain=chain), j
        raise self.fail(t.pos, f"unexpected {t.text!r} in operand")


# ---- execution -----------------------------------------------------------------------------------------------

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
            what = str(cmd.args[0])
            raise self.fail(first, what, f"can't give argument to non-function {what}")
        return self.arg(first, dot)

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
        go_type = "interface {}" if self.strict else _go_type(value)  # raw JSON values are all interface {}
        raise self.fail(node, str(node), f"can't evaluate field {name} in type {go_type}")


def _go_type(v: Any) -> str:
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


class _Missing:
    pass


_MISSING_ARG: Any = _Missing()


# ---- functions -----------------------------------------------------------------------------------------------

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
            raise ValueError(f"can't index item of type {_go_type(item)}")
    return item


def _len(item: Any) -> int:
    if isinstance(item, GoNil):
        return 0
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | dict):
        return len(item)
    raise ValueError(f"len of type {_go_type(item)}")


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
        out.append("%!(EXTRA " + ", ".join(f"{_go_type(x)}={go_print(x)}" for x in extra) + ")")
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
    return f"%!{verb}({_go_type(arg)}={go_print(arg)})"


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
            "interface {}" if items is NO_VALUE else _go_type(items)
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
