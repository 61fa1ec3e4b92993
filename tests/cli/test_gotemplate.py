"""The Go text/template subset: output and error messages as Go (and docker's functions) give them."""

from __future__ import annotations

from typing import Any

import pytest

from berth.cli.formatter import FormatError, json_compact, json_indent, render_list
from berth.cli.gotemplate import GoNil, Record, Template, TemplateError, go_float, go_print, go_sprintf
from berth.cli.gotypes import image_inspect_value, raw_value

DATA: dict[str, Any] = {
    "Name": "web", "Count": 3, "Zero": 0, "Empty": "", "List": ["a", "b"], "Map": {"z": "1", "a": "2"},
    "Nested": {"Inner": {"Leaf": "deep"}}, "Flag": True, "Html": "<b>&</b>", "None": None, "Float": 2.5,
}


@pytest.mark.parametrize(("source", "expected"), [
    ("plain text", "plain text"),
    ("{{.Name}}", "web"),
    ("{{.Nested.Inner.Leaf}}", "deep"),
    ("{{.List}} {{.Map}}", "[a b] map[a:2 z:1]"),
    ("{{json .List}}|{{json .Map}}|{{json .Html}}", '["a","b"]|{"z":"1","a":"2"}|"<b>&</b>"'),
    ("{{index .Map \"a\"}}{{index .List 1}}", "2b"),
    ("{{len .List}} {{len .Map}} {{len .Name}}", "2 2 3"),
    ("{{range .List}}<{{.}}>{{end}}", "<a><b>"),
    ("{{range $i, $e := .List}}{{$i}}={{$e}} {{end}}", "0=a 1=b "),
    ("{{range $k, $v := .Map}}{{$k}}{{$v}}{{end}}", "a2z1"),
    ("{{range .None}}x{{else}}none{{end}}{{range .Map.nope}}y{{else}}-{{end}}", "none-"),
    ("{{if .Zero}}yes{{else if .Empty}}empty{{else}}neither{{end}}", "neither"),
    ("{{if and .Flag .Count}}both{{end}}{{if or .Zero .Name}}-{{.Name}}{{end}}", "both-web"),
    ("{{if not .Zero}}z{{end}}{{if eq .Count 3}}3{{end}}{{if ne .Name \"x\"}}n{{end}}", "z3n"),
    ("{{if eq .Name \"a\" \"web\"}}any{{end}}", "any"),
    ("{{if lt .Count 4}}lt{{end}}{{if ge .Count 3}}ge{{end}}", "ltge"),
    ("{{with .Nested.Inner}}{{.Leaf}}{{end}}{{with .Empty}}x{{else}}w{{end}}", "deepw"),
    ("{{$n := .Name}}{{$n}}{{$n = \"other\"}} {{$n}}", "web other"),
    ("{{range .List}}{{$.Name}}{{end}}", "webweb"),
    ("{{.Name | upper}} {{upper .Name | lower}}", "WEB web"),
    ("{{join .List \", \"}} {{split \"a:b\" \":\"}}", "a, b [a b]"),
    ("{{title \"hello world\"}} {{pad .Name 1 2}}| {{truncate .Name 2}}", "Hello World  web  | we"),
    ("{{printf \"%s-%d-%5.1f|%-4s|%q|%v|%x\" .Name .Count .Float .Name .Name .List 255}}",
     'web-3-  2.5|web |"web"|[a b]|ff'),
    ("{{print .Name .Count}} {{print 1 2}}", "web3 1 2"),
    ("{{println .Name}}", "web\n"),
    ("a  {{- .Name -}}  b", "awebb"),
    ("{{/* a comment */}}x", "x"),
    ("{{\"quoted\\tstring\"}} {{`raw\\n`}}", "quoted\tstring raw\\n"),
    ("{{.Float}} {{.Flag}} {{.None}}", "2.5 true <nil>"),
    ("{{.Missing}}", "<no value>"),
    ("{{(index .List 0)}}{{(.Nested.Inner).Leaf}}", "adeep"),
    ("{{slice .Name 1}} {{slice .List 0 1}}", "eb [a]"),
    ("{{urlquery \"a b&c\"}}", "a+b%26c"),
    ("{{html}}", None),
])
def test_template_output(source: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(TemplateError):
            Template(source).execute(DATA)
        return
    assert Template(source).execute(DATA) == expected


@pytest.mark.parametrize(("source", "message"), [
    ("{{.Name", "template: :1: unclosed action"),
    ("{{if .Name}}x", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{nope .Name}}", 'template: :1: function "nope" not defined'),
    ("{{json.}}", "template: :1: unexpected <.> in operand"),
    ("x\n{{\"unterminated}}", "template: :2: unterminated quoted string"),
])
def test_parse_errors_read_like_go(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(source)
    assert str(info.value) == message


def test_execution_errors_name_the_position_and_the_node() -> None:
    record = Record("*formatter.imageContext", {"ID": lambda: "x"})
    with pytest.raises(TemplateError) as info:
        Template("ab{{.Nope}}").execute(record)
    assert str(info.value) == ('template: :1:4: executing "" at <.Nope>: can\'t evaluate field Nope in type '
                               "*formatter.imageContext")
    with pytest.raises(TemplateError) as info:
        Template("{{.Nested.Nope}}").execute(DATA, missing_key_error=True)
    assert str(info.value) == 'template: :1:9: executing "" at <.Nested.Nope>: map has no entry for key "Nope"'
    with pytest.raises(TemplateError) as info:
        Template("{{.Name 1}}").execute(DATA)
    assert "can't give argument to non-function .Name" in str(info.value)


def test_a_partial_run_keeps_what_was_written_before_the_error() -> None:
    text, err = Template("a{{.Name}}b{{.X.Y}}c", name="version").run(DATA)
    assert text == "awebb"
    assert err is not None and str(err).startswith('template: version:1:15: executing "version" at <.X.Y>')


def test_go_prints_floats_with_shortest_digits_and_exponent_outside_minus4_to_6() -> None:
    assert [go_float(f) for f in (1.0, 2.5, 1985562.0, 123456.0, 0.0001, 0.00001, -0.5, 1e21)] == \
        ["1", "2.5", "1.985562e+06", "123456", "0.0001", "1e-05", "-0.5", "1e+21"]


def test_typed_nils_print_as_go_prints_them() -> None:
    assert go_print(GoNil("slice")) == "[]"
    assert go_print(GoNil("map")) == "map[]"
    assert go_print(GoNil("ptr")) == "<nil>"
    assert go_print({"b": [1, 2], "a": {"x": True}}) == "map[a:map[x:true] b:[1 2]]"


def test_sprintf_reports_missing_and_extra_operands_as_go() -> None:
    assert go_sprintf("%s %s", "a") == "a %!s(MISSING)"
    assert go_sprintf("%s", "a", 1) == "a%!(EXTRA int=1)"
    assert go_sprintf("%d", "x") == "%!d(string=x)"
    assert go_sprintf("100%%") == "100%"


def test_record_json_is_sorted_and_html_escaped_like_go_marshal() -> None:
    record = Record("*x", {"B": lambda: "<none>", "A": lambda: "a&b"})
    assert Template("{{json .}}").execute(record) == '{"A":"a\\u0026b","B":"\\u003cnone\\u003e"}'


INSPECT = {
    "Id": "sha256:" + "1" * 64, "RepoTags": ["x:1"], "RepoDigests": [], "Parent": "", "Comment": "", "Created": "c",
    "ContainerConfig": {"Hostname": "", "Env": None, "Cmd": None, "Labels": None, "Volumes": None},
    "DockerVersion": "", "Author": "",
    "Config": {"Hostname": "", "User": "", "Env": ["A=1"], "Cmd": ["sh"], "Entrypoint": None, "Labels": None,
               "WorkingDir": "", "OnBuild": None, "Volumes": None},
    "Architecture": "amd64", "Os": "linux", "Size": 10, "VirtualSize": 10,
    "GraphDriver": {"Data": None, "Name": "overlay2"}, "RootFS": {"Type": "layers", "Layers": ["sha256:ab"]},
    "Metadata": {"LastTagTime": "2026-11-28T02:17:00.680464200Z"},
}


@pytest.mark.parametrize(("source", "expected"), [
    ("{{.ID}}", "sha256:" + "1" * 64),
    ("{{.Config.Labels}} {{.Config.Entrypoint}} {{json .Config.Labels}}", "map[] [] null"),
    ('{{index .Config.Labels "k"}}|', "|"),
    ("{{json .Config}}", '{"Env":["A=1"],"Cmd":["sh"]}'),
    ("{{.Metadata.LastTagTime}}", "2026-11-28 02:17:00.6804642 +0000 UTC"),
    ("{{.RootFS}}", "{layers [sha256:ab]}"),
    ("{{.GraphDriver}}", "{map[] overlay2}"),
])
def test_inspect_values_follow_the_go_struct(source: str, expected: str) -> None:
    assert Template(source).execute(image_inspect_value(INSPECT)) == expected


def test_unknown_fields_of_the_typed_struct_fail_and_the_raw_fallback_is_strict() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Id in type image.InspectResponse"):
        Template("{{.Id}}").execute(image_inspect_value(INSPECT))
    raw = raw_value(INSPECT)
    assert Template("{{.Id}}").execute(raw, missing_key_error=True) == "sha256:" + "1" * 64
    with pytest.raises(TemplateError, match="expected \\[\\]string; got \\[\\]interface \\{\\}"):
        Template('{{join .Config.Env ","}}').execute(raw, missing_key_error=True)
    with pytest.raises(TemplateError, match="index of untyped nil"):
        Template('{{index .Config.Labels "k"}}').execute(raw, missing_key_error=True)


def test_table_formats_get_a_header_row_and_aligned_columns() -> None:
    rows = [Record("*r", {"A": lambda: "x", "B": lambda: "long value"}),
            Record("*r", {"A": lambda: "yyyyyyyyyyyy", "B": lambda: "b"})]
    out = render_list("table {{.A}}\\t{{.B | lower}}", rows, {"A": "COL A", "B": "COL B"})
    assert out == "COL A          COL B\nx              long value\nyyyyyyyyyyyy   b\n"
    assert render_list("table {{.A}}", [], {"A": "COL A"}) == "COL A\n"
    assert render_list("{{.A}}", rows, {}) == "x\nyyyyyyyyyyyy\n"
    assert render_list("json", rows[:1], {}) == '{"A":"x","B":"long value"}\n'


def test_a_bad_list_format_is_a_template_parsing_error() -> None:
    with pytest.raises(FormatError, match="^template parsing error: template: :1: unclosed action$"):
        render_list("{{.A", [], {})


def test_json_indent_keeps_string_escapes_and_compact_empties() -> None:
    raw = '{"a":[],"b":{},"c":"\\u003cx\\u003e","d":[1,{"e":null}],"f":"a,b:{c}"}'
    assert json_indent("[" + raw + "]") == (
        '[\n    {\n        "a": [],\n        "b": {},\n        "c": "\\u003cx\\u003e",\n        "d": [\n'
        '            1,\n            {\n                "e": null\n            }\n        ],\n'
        '        "f": "a,b:{c}"\n    }\n]'
    )
    assert json_compact('{ "a" : [ 1 , 2 ] }') == '{"a":[1,2]}'
