"""Lexing and parsing of Go template text into a small tree of text, actions and if/range/with branches.

May import: the standard library, berth.cli.gotemplate.values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from berth.cli.gotemplate.values import TemplateError, go_print

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any


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
