"""The Dockerfile parser: every instruction, directives, continuations, heredocs, JSON detection, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.build.dockerfile import Dockerfile, DockerfileError, Instruction, healthcheck, parse, parse_go_duration
from berth.errors import InvalidArgument


def one(text: str) -> Instruction:
    df = parse("FROM scratch\n" + text)
    (instr,) = df.stages[0].instructions
    return instr


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse(text)
    return info.value


def test_from_with_platform_and_stage_name() -> None:
    df = parse("FROM --platform=$BUILDPLATFORM golang:1.21 AS Builder\nRUN true\nFROM scratch\nCOPY --from=builder /x /")
    first, second = df.stages
    assert (first.index, first.name, first.base, first.platform, first.line) == (
        0, "builder", "golang:1.21", "$BUILDPLATFORM", 1)
    assert (second.index, second.name, second.base, second.platform) == (1, None, "scratch", None)
    assert df.stage("BUILDER") is first
    assert df.stage("1") is second
    with pytest.raises(InvalidArgument, match="failed to reach build target nope"):
        df.stage("nope")
    with pytest.raises(InvalidArgument):
        df.stage("2")
    with pytest.raises(InvalidArgument, match="failed to reach build target 1 in Dockerfile"):
        df.stage("1", allow_index=False)


def test_global_args_are_those_before_the_first_from() -> None:
    df = parse("ARG A=1 B\nARG C\nFROM busybox:${A}\nARG B\n")
    assert [i.args for i in df.global_args] == [("A=1", "B"), ("C",)]
    assert df.global_args[0].arg_pairs() == [("A", "1"), ("B", None)]
    assert [i.keyword for i in df.stages[0].instructions] == ["ARG"]


def test_run_shell_and_exec_forms() -> None:
    shell = one("RUN echo  $HOME   'x'")
    assert (shell.args, shell.json_form, shell.original) == (("echo  $HOME   'x'",), False, "RUN echo  $HOME   'x'")
    exe = one('RUN ["echo", "a b", "\\u00e9"]')
    assert (exe.args, exe.json_form) == (("echo", "a b", "\u00e9"), True)
    assert one("RUN [ ]").args == ()
    assert one("RUN [ ]").json_form


@pytest.mark.parametrize("text", ["[echo]", "['a']", '["a",]', "[NaN]", '["a"', "[a, b]", "notjson ["])
def test_invalid_json_falls_back_to_the_shell_form(text: str) -> None:
    instr = one("CMD " + text)
    assert (instr.args, instr.json_form) == ((text,), False)


def test_json_array_trailing_text_is_ignored_as_docker_does() -> None:
    assert one('CMD ["a"] trailing').args == ("a",)


def test_json_array_with_a_non_string_is_an_error() -> None:
    err = error('FROM scratch\nCMD ["a", 1]\n')
    assert err.line == 2
    assert str(err) == ("dockerfile parse error line 2: when using JSON array syntax, arrays must be comprised of strings "
                        "only")


def test_copy_and_add_flags_and_sources() -> None:
    instr = one("COPY --from=build --chown=1000:1000 --chmod=0755 --link a b /dst/")
    assert instr.args == ("a", "b", "/dst/")
    assert instr.flags == (("from", "build"), ("chown", "1000:1000"), ("chmod", "0755"), ("link", "true"))
    assert instr.flag("from") == "build"
    assert instr.flag("missing") is None
    add = one('ADD --link=false ["a b", "/d"]')
    assert (add.args, add.json_form, add.flags) == (("a b", "/d"), True, (("link", "false"),))
    assert one('COPY "a b" /d').args == ('"a', 'b"', "/d")


def test_run_mount_flags_are_kept_in_order() -> None:
    instr = one("RUN --mount=type=cache,target=/c --network=host --mount=type=tmpfs,target=/t make")
    assert instr.flags == (("mount", "type=cache,target=/c"), ("network", "host"), ("mount", "type=tmpfs,target=/t"))
    assert instr.flag_values("mount") == ["type=cache,target=/c", "type=tmpfs,target=/t"]
    assert instr.args == ("make",)


def test_double_dash_ends_the_flags() -> None:
    assert one("RUN -- --not-a-flag").args == ("--not-a-flag",)


@pytest.mark.parametrize(("text", "message"), [
    ("COPY --foo=bar a b", "Unknown flag: foo"),
    ("RUN --chown=1 x", "Unknown flag: chown"),
    ("CMD --version", "Unknown flag: version"),
    ("COPY --from a b", "Missing a value on flag: from"),
    ("COPY --from=a --from=b a b", "Duplicate flag specified: from"),
    ("COPY --link=maybe a b", "Expecting boolean value for flag link, not: maybe"),
    ("COPY --link= a b", "Missing a value on flag: link"),
])
def test_flags_are_validated_per_instruction(text: str, message: str) -> None:
    err = error("FROM scratch\n" + text)
    assert (err.line, err.reason) == (2, message)


def test_env_both_forms() -> None:
    assert one('ENV a=b c="d e" f=').pairs() == [("a", "b"), ("c", '"d e"'), ("f", "")]
    assert one("ENV legacy a value with spaces").pairs() == [("legacy", "a value with spaces")]
    assert one("ENV k=v\\ w").pairs() == [("k", "v\\ w")]


def test_label_and_arg_forms() -> None:
    assert one('LABEL "com.example.vendor"="ACME Inc" version=1.0').pairs() == [
        ('"com.example.vendor"', '"ACME Inc"'), ("version", "1.0")]
    assert one("ARG a b=2 c=").arg_pairs() == [("a", None), ("b", "2"), ("c", "")]


@pytest.mark.parametrize(("text", "message"), [
    ("ENV", "ENV requires at least one argument"),
    ("ENV =x", "ENV names can not be blank"),
    ("ENV a=1 b", "Syntax error - can't find = in \"b\". Must be of the form: name=value"),
    ("ENV onlykey", "ENV must have two arguments"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ARG", "ARG requires at least one argument"),
    ("ARG =1", "ARG names can not be blank"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("USER", "USER requires exactly one argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ('VOLUME [" "]', "VOLUME specified can not be an empty string"),
    ("COPY onlyone", "COPY requires at least two arguments, but only one was provided. "
                     "Destination could not be determined"),
    ("ADD", "ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
    ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
    ("SHELL []", "SHELL requires at least one argument"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD BOGUS x", "unknown instruction: BOGUS"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --interval=5 CMD x", 'time: missing unit in duration "5"'),
    ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=0 CMD x", "--retries must be at least 1 (not 0)"),
    ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
    ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
    ("BOGUS x", "unknown instruction: BOGUS"),
    ("pip install x", "unknown instruction: PIP"),
])
def test_argument_errors_name_the_line(text: str, message: str) -> None:
    err = error("FROM scratch\n\n" + text + "\n")
    assert err.reason == message
    assert err.line == 3
    assert str(err) == f"dockerfile parse error line 3: {message}"


def test_from_errors() -> None:
    assert error("FROM\n").reason == "FROM requires either one or three arguments"
    assert error("FROM a b\n").reason == "FROM requires either one or three arguments"
    assert error("FROM a AS 1x\n").reason == (
        'invalid name for build stage: "1x", name can\'t start with a number or contain symbols')
    assert error("FROM a AS x\nFROM b AS X\n").reason == 'duplicate stage name "x"'
    err = error("# comment\nRUN true\nFROM a\n")
    assert (err.line, err.reason) == (2, "no build stage in current context")
    assert error("ARG x\n").reason == "no build stage in current context"
    assert str(error("# only a comment\n\n")) == "failed to parse Dockerfile: file with no instructions"
    assert error("").line is None


def test_every_instruction_parses() -> None:
    df = parse("""\
FROM busybox
MAINTAINER someone <a@b.c>
RUN echo hi
CMD ["sh"]
ENTRYPOINT exec top -b
COPY a /a
ADD http://example.com/x.tgz /x
ENV A=1
ARG B
WORKDIR /w
USER 1000:1000
EXPOSE 80/tcp 53/udp
LABEL a=b
VOLUME ["/data", "/logs"]
VOLUME /one /two
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 CMD ["curl", "-f", "http://x/"]
SHELL ["/bin/bash", "-c"]
STOPSIGNAL SIGTERM
ONBUILD COPY --chown=1:1 . /src
""")
    instrs = df.stages[0].instructions
    assert [i.keyword for i in instrs] == [
        "MAINTAINER", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "LABEL",
        "VOLUME", "VOLUME", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD"]
    by = {i.line: i for i in instrs}
    assert by[2].args == ("someone <a@b.c>",)
    assert by[5].args == ("exec top -b",)
    assert by[12].args == ("80/tcp", "53/udp")
    assert by[14].args == ("/data", "/logs") and by[14].json_form
    assert by[15].args == ("/one", "/two") and not by[15].json_form
    assert by[16].args == ("CMD", "curl", "-f", "http://x/") and by[16].json_form
    hc = healthcheck(by[16])
    assert (hc.test, hc.interval_ns, hc.timeout_ns, hc.start_period_ns, hc.retries) == (
        ("CMD", "curl", "-f", "http://x/"), 30 * 10**9, 3 * 10**9, 5 * 10**9, 3)
    onbuild = by[19]
    assert onbuild.args == ("COPY --chown=1:1 . /src",)
    assert onbuild.trigger is not None
    assert (onbuild.trigger.keyword, onbuild.trigger.args, onbuild.trigger.flags) == (
        "COPY", (".", "/src"), (("chown", "1:1"),))


def test_healthcheck_none_and_shell_form() -> None:
    assert healthcheck(one("HEALTHCHECK NONE")).test == ("NONE",)
    assert healthcheck(one("healthcheck cmd curl -f http://x/ || exit 1")).test == (
        "CMD-SHELL", "curl -f http://x/ || exit 1")


def test_keywords_are_case_insensitive() -> None:
    df = parse("from busybox as Base\nrun echo hi\nEnV a=b\n")
    assert [i.keyword for i in df.stages[0].instructions] == ["RUN", "ENV"]
    assert df.stages[0].name == "base"


def test_continuations_join_lines_and_skip_comments_and_blank_lines() -> None:
    df = parse("FROM busybox\nRUN echo a \\\n  # a comment\n\n    b \\\n\t  \n  c\nRUN next\n")
    run, nxt = df.stages[0].instructions
    assert run.args == ("echo a     b   c",)
    assert (run.line, run.end_line) == (2, 7)
    assert nxt.line == 8
    assert df.warnings and "Empty continuation line" in df.warnings[0]


def test_continuation_allows_trailing_blanks_after_the_escape() -> None:
    df = parse("FROM busybox\nRUN a \\  \t\n b\n")
    assert df.stages[0].instructions[0].args == ("a  b",)


def test_an_escaped_escape_ends_the_instruction_as_in_docker() -> None:
    df = parse("FROM busybox\nRUN a \\\\\nRUN b \\\\\\\nRUN c\\\n  d\nRUN \\\n e\n")
    assert [i.args for i in df.stages[0].instructions] == [
        ("a \\\\",), ("b \\\\\\",), ("c  d",), ("e",)]


def test_continuation_at_end_of_file() -> None:
    assert parse("FROM busybox\nRUN a \\").stages[0].instructions[0].args == ("a",)


def test_escape_directive_switches_to_backtick() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN dir c:\\ `\n  /w\nCOPY a\\b c:\\d\\\n")
    assert df.escape == "`"
    run, copy = df.stages[0].instructions
    assert run.args == ("dir c:\\   /w",)
    assert copy.args == ("a\\b", "c:\\d\\")


def test_directives_only_at_the_top_and_syntax_is_kept() -> None:
    df = parse("# syntax=docker/dockerfile:1.4\n#ESCAPE = `\n# unknown=x\nFROM busybox\n")
    assert (df.syntax, df.escape) == ("docker/dockerfile:1.4", "`")
    late = parse("FROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert late.escape == "\\"
    assert late.stages[0].instructions[0].args == ("a  b",)
    after_comment = parse("# hello\n# escape=`\nFROM busybox\n")
    assert after_comment.escape == "\\"
    after_blank = parse("\n# escape=`\nFROM busybox\n")
    assert after_blank.escape == "\\"
    after_unknown = parse("# foo=bar\n# escape=`\nFROM busybox\n")
    assert after_unknown.escape == "\\"


def test_directive_errors() -> None:
    assert error("# escape=x\nFROM a\n").reason == "invalid escape token 'x' does not match ` or \\"
    err = error("# escape=`\n# escape=\\\nFROM a\n")
    assert (err.line, err.reason) == (2, "only one escape parser directive can be used")


def test_bom_and_crlf_are_handled() -> None:
    df = parse("\ufeffFROM busybox\r\nRUN a \\\r\n b\r\n")
    assert df.stages[0].instructions[0].args == ("a  b",)


def test_comments_and_indentation() -> None:
    df = parse("  # indented comment\n\tFROM busybox\n    RUN   echo hi  \n")
    assert df.stages[0].instructions[0].args == ("echo hi",)
    assert df.stages[0].instructions[0].original == "RUN   echo hi"


def test_heredocs() -> None:
    df = parse("""FROM busybox
RUN <<EOF
echo "$HOME"
EOF
RUN <<-EOT bash
\techo indented
\tEOT
COPY <<one <<'two' /dest/
1 $x
one
2 $x
two
RUN ["echo", "<<EOF"]
RUN cat <<"A" > /a && cat <<B
a
A
b
B
""")
    run1, run2, copy, exe, run3 = df.stages[0].instructions
    (doc,) = run1.heredocs
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", 'echo "$HOME"\n', True, False)
    assert (run1.line, run1.end_line) == (2, 4)
    (doc2,) = run2.heredocs
    assert (doc2.name, doc2.chomp, doc2.content, doc2.text()) == ("EOT", True, "\techo indented\n", "echo indented\n")
    assert run2.args == ("<<-EOT bash",)
    one_, two = copy.heredocs
    assert (one_.name, one_.content, one_.expand) == ("one", "1 $x\n", True)
    assert (two.name, two.content, two.expand) == ("two", "2 $x\n", False)
    assert copy.args == ("<<one", "<<'two'", "/dest/")
    assert exe.heredocs == () and exe.json_form
    assert [(d.name, d.content, d.expand) for d in run3.heredocs] == [("A", "a\n", False), ("B", "b\n", True)]
    assert run3.line == 14


def test_heredoc_bodies_keep_their_line_endings() -> None:
    df = parse("FROM busybox\r\nCOPY <<EOF /x\r\na\r\nb\nEOF\r\nRUN <<END\nlast line without newline\nEND")
    copy, run = df.stages[0].instructions
    assert copy.heredocs[0].content == "a\r\nb\n"
    assert run.heredocs[0].content == "last line without newline\n"


def test_a_heredoc_delimiter_may_look_like_a_variable() -> None:
    (doc,) = one("RUN <<$EOF\necho\n$EOF").heredocs
    assert (doc.name, doc.content) == ("$EOF", "echo\n")


def test_lines_over_64_kib_are_refused_like_docker() -> None:
    parse("FROM busybox\nRUN " + "x" * (64 * 1024 - 5) + "\n")
    err = error("FROM busybox\nRUN " + "x" * (64 * 1024) + "\n")
    assert (err.line, err.reason) == (2, "dockerfile line greater than max allowed size of 65535")


def test_heredoc_only_for_run_copy_add() -> None:
    df = parse("FROM busybox\nCMD cat <<EOF\nRUN true\n")
    cmd, run = df.stages[0].instructions
    assert cmd.heredocs == () and run.args == ("true",)


def test_unterminated_heredoc() -> None:
    err = error("FROM busybox\nRUN <<EOF\necho\n")
    assert (err.line, err.reason) == (2, "unterminated heredoc")


def test_not_a_heredoc() -> None:
    assert one("RUN echo a<<b").heredocs == ()
    assert one("RUN cat <<").heredocs == ()
    assert one("RUN echo '<<EOF'").heredocs == ()


def test_go_durations() -> None:
    assert parse_go_duration("1m30s") == 90 * 10**9
    assert parse_go_duration("1.5h") == 5400 * 10**9
    assert parse_go_duration("300ms") == 300 * 10**6
    assert parse_go_duration("0") == 0
    assert parse_go_duration("-1s") == -(10**9)
    assert parse_go_duration("2us") == parse_go_duration("2\u00b5s") == 2000
    for bad in ("", "s", "1", "1x", ".s", "1.5"):
        with pytest.raises(InvalidArgument):
            parse_go_duration(bad)


def test_dockerfile_is_frozen() -> None:
    df = parse("FROM a\n")
    assert isinstance(df, Dockerfile)
    with pytest.raises(AttributeError):
        df.escape = "`"  # type: ignore[misc]


_FUZZ_ALPHABET = st.sampled_from(list("FROMRUNCOPYENVARGLABELHEALTHCHECKSHELL ONBUILD\\`#=\"'[]{},:-<>$\t\r\n\u00a0ax1"))


@settings(max_examples=400, deadline=None)
@given(st.text(_FUZZ_ALPHABET, max_size=120))
def test_any_text_parses_or_fails_with_a_dockerfile_error(text: str) -> None:
    try:
        df = parse(text)
    except DockerfileError as exc:
        assert exc.reason
        return
    assert df.stages
    for stage in df.stages:
        for instr in stage.instructions:
            assert instr.keyword.isupper() and instr.line >= stage.line and instr.end_line >= instr.line


_KEYWORD_LINES = st.sampled_from(["RUN", "CMD", "COPY", "ADD", "ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "USER",
                                  "WORKDIR", "HEALTHCHECK", "ONBUILD", "SHELL", "STOPSIGNAL", "ENTRYPOINT"])


@settings(max_examples=400, deadline=None)
@given(_KEYWORD_LINES, st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                               max_size=60))
def test_any_instruction_argument_parses_or_fails_with_a_dockerfile_error(keyword: str, rest: str) -> None:
    try:
        df = parse(f"FROM scratch\n{keyword} {rest}\n")
    except DockerfileError as exc:
        assert exc.line == 2 or exc.line is None
        return
    (instr,) = df.stages[0].instructions
    assert instr.keyword == keyword
