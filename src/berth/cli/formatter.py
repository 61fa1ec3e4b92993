"""docker's output machinery: `--format` handling for lists (table/json/custom), inspect's JSON, progress streams.

render_list mirrors docker's formatter.Context: "table" prefix → header row from the same template run on the
column names, then tabwriter alignment (minwidth 10, padding 3); "json" → `{{json .}}`; literal `\\t`/`\\n` in a
format become tab/newline. Inspect's default output is the daemon's raw JSON re-indented with 4 spaces, string
escapes untouched, as Go's json.Indent does.

May import: the standard library, berth.cli.gotemplate, berth.cli.tabwriter, berth.errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping

from berth.cli.gotemplate import HEADER_FUNCS, Record, Template, TemplateError
from berth.cli.tabwriter import align
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any, TextIO


class FormatError(BerthError):
    """A --format template that does not parse or fails on the data (docker exits 1 or 64)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def prepare(fmt: str) -> tuple[bool, str]:
    is_table = fmt.startswith("table")
    body = fmt[len("table"):] if is_table else ("{{json .}}" if fmt == "json" else fmt)
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return is_table, body


def render_list(fmt: str, rows: Iterable[Record], header: Mapping[str, Any]) -> str:
    is_table, body = prepare(fmt)
    try:
        tmpl = Template(body)
    except TemplateError as exc:
        raise FormatError(f"template parsing error: {exc}") from exc
    lines: list[str] = []
    for row in rows:
        try:
            lines.append(tmpl.execute(row) + "\n")
        except TemplateError as exc:
            raise FormatError(f"template parsing error: {exc}") from exc
    if not is_table:
        return "".join(lines)
    head = tmpl.execute_partial(dict(header), funcs=HEADER_FUNCS)
    return align(head + "\n" + "".join(lines))


# ---- JSON as Go prints it ------------------------------------------------------------------------------------

def _tokens(raw: str) -> Iterator[str]:
    """Split JSON text into structural characters and whole scalars (strings kept byte-exact)."""
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c in " \t\r\n":
            i += 1
        elif c in "{}[],:":
            yield c
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and raw[j] != '"':
                j += 2 if raw[j] == "\\" else 1
            yield raw[i:j + 1]
            i = j + 1
        else:
            j = i
            while j < n and raw[j] not in " \t\r\n{}[],:":
                j += 1
            yield raw[i:j]
            i = j


def json_indent(raw: str, indent: str = "    ") -> str:
    """Go's json.Indent(dst, src, "", indent): empty {} and [] stay compact."""
    out: list[str] = []
    depth = 0
    toks = list(_tokens(raw))
    for k, t in enumerate(toks):
        if t in "{[":
            out.append(t)
            if k + 1 < len(toks) and toks[k + 1] in "}]":
                continue
            depth += 1
            out.append("\n" + indent * depth)
        elif t in "}]":
            if k > 0 and toks[k - 1] in "{[":
                out.append(t)
                continue
            depth -= 1
            out.append("\n" + indent * depth + t)
        elif t == ",":
            out.append(",\n" + indent * depth)
        elif t == ":":
            out.append(": ")
        else:
            out.append(t)
    return "".join(out)


def json_compact(raw: str) -> str:
    return "".join(_tokens(raw))


def inspect_output(raws: list[str], fmt: str, typed: list[Any]) -> tuple[str, list[str]]:
    """docker inspect's output for the objects found, and the template errors met (each element is tried on its
    typed form, then, as docker's fallback, on its raw JSON with missing keys as errors)."""
    if not fmt or fmt == "json":
        if not raws:
            return "[]\n", []
        joined = "[" + ",".join(r.strip() for r in raws) + "]"
        return (json_indent(joined) if not fmt else json_compact(joined)) + "\n", []
    try:
        tmpl = Template(fmt)
    except TemplateError as exc:
        raise FormatError(f"template parsing error: {exc}", exit_code=64) from exc
    from berth.cli.gotypes import raw_value  # only inspect --format needs Go's struct shapes

    out: list[str] = []
    errors: list[str] = []
    for raw, value in zip(raws, typed, strict=True):
        try:
            out.append(tmpl.execute(value) + "\n")
            continue
        except TemplateError:
            pass
        try:
            out.append(tmpl.execute(raw_value(json.loads(raw)), missing_key_error=True) + "\n")
        except TemplateError as exc:
            errors.append(f"template parsing error: {exc}")
    return ("".join(out) if out else "\n"), errors


# ---- JSON-lines progress (load, import, bootstrap) --------------------------------------------------------------

class StreamError(BerthError):
    """An error the daemon reported inside a progress stream after its 200."""


def display_stream(messages: Iterable[Any], out: TextIO, aux: list[Any] | None = None) -> None:
    """Print a progress stream as docker does: bars on a terminal, plain lines otherwise."""
    if out.isatty():
        from berth.cli.progress import display_tty
        display_tty(messages, out, aux, StreamError)
        return
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        err = msg.get("errorDetail") or ({"message": msg["error"]} if msg.get("error") else None)
        if err:
            raise StreamError(str(err.get("message") or msg.get("error")))
        if "aux" in msg:
            if aux is not None:
                aux.append(msg["aux"])
            continue
        if msg.get("progressDetail") and msg.get("progressDetail") != {}:
            continue  # byte counters: shown only on a terminal
        line = ""
        if msg.get("id"):
            line += f"{msg['id']}: "
        if msg.get("stream"):
            out.write(line + str(msg["stream"]))
        elif msg.get("status") is not None:
            out.write(line + str(msg["status"]) + "\n")
        out.flush()
