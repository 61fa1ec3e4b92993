"""Docker's shell-word lexer: expansion, quote removal, word splitting, ENV/LABEL key-value parsing."""

from __future__ import annotations

import random
import re
import string
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.build.shellwords import (
    EXPANDED_INSTRUCTIONS,
    expand,
    parse_key_values,
    parse_words,
    split_fields,
    split_words,
)
from berth.errors import InvalidArgument

ENV = {"x": "val", "empty": "", "sp": "a b  c", "PATH": "/bin", "_u1": "u"}


@pytest.mark.parametrize(("word", "expected"), [
    ("plain", "plain"),
    ("$x", "val"),
    ("${x}", "val"),
    ("${x}y", "valy"),
    ("$xy", ""),
    ("$x.y", "val.y"),
    ("$_u1", "u"),
    ("$unset", ""),
    ("${unset}", ""),
    ("${x:-def}", "val"),
    ("${empty:-def}", "def"),
    ("${unset:-def}", "def"),
    ("${empty-def}", ""),
    ("${unset-def}", "def"),
    ("${x:+alt}", "alt"),
    ("${empty:+alt}", ""),
    ("${empty+alt}", "alt"),
    ("${unset+alt}", ""),
    ("${unset:-$x}", "val"),
    ("${unset:-${empty:-deep}}", "deep"),
    ("${unset:-a b}", "a b"),
    ("'$x'", "$x"),
    ('"$x"', "val"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$x"', "a$x"),
    ('"a\\nb"', "a\\nb"),
    ("a\\ b", "a b"),
    ("\\$x", "$x"),
    ("$", "$"),
    ("a$", "a$"),
    ("$1", ""),
    ("$@", ""),
    ("'it''s'", "its"),
    ('"mixed "\'quo"tes\'', 'mixed quo"tes'),
    ("trailing\\", "trailing"),
    ("${x:?oops}", "val"),
    ("${empty?oops}", ""),
    ("caf\u00e9 $x", "caf\u00e9 val"),
])
def test_expand_follows_dockers_process_word(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


def test_backtick_escape_replaces_backslash() -> None:
    assert expand("a`$x", ENV, "`") == "a$x"
    assert expand("c:\\path", ENV, "`") == "c:\\path"
    assert expand('"a`"b"', ENV, "`") == 'a"b'


@pytest.mark.parametrize(("word", "message"), [
    ("'open", "matching single-quote"),
    ('"open', "matching double-quote"),
    ("${x", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:-a}", "bad substitution"),
    ("${x!a}", "unsupported modifier (!)"),
    ("${unset?}", "unset: is not allowed to be unset"),
    ("${empty:?must be set}", "empty: must be set"),
    ("${x:-abc", "missing '}'"),
])
def test_expand_refuses_what_docker_refuses(word: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand(word, ENV)


@pytest.mark.parametrize(("text", "expected"), [
    ("a b", ["a", "b"]),
    ("  a   b  ", ["a", "b"]),
    ("$sp", ["a", "b", "c"]),
    ('"$sp"', ["a b  c"]),
    ("x$sp", ["xa", "b", "c"]),
    ("'a b' c", ["a b", "c"]),
    ('a "" b', ["a", "b"]),
    ("a\\ b c", ["a b", "c"]),
    ("${unset}", []),
    ("", []),
])
def test_split_words_splits_on_unquoted_whitespace_after_expansion(text: str, expected: list[str]) -> None:
    assert split_words(text, ENV) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('a=b c="d e"', ["a=b", 'c="d e"']),
    ("a='x y' b", ["a='x y'", "b"]),
    ("a\\ b c", ["a\\ b", "c"]),
    ('k="a\\"b" z', ['k="a\\"b"', "z"]),
    ('""', ['""']),
    ("trailing\\", ["trailing"]),
])
def test_parse_words_keeps_quotes_for_later_expansion(text: str, expected: list[str]) -> None:
    assert parse_words(text) == expected


def test_parse_key_values_both_forms() -> None:
    assert parse_key_values('a=b c="d e" f=') == [("a", "b"), ("c", '"d e"'), ("f", "")]
    assert parse_key_values("legacy v  w") == [("legacy", "v  w")]
    assert parse_key_values("k=v=w") == [("k", "v=w")]
    assert parse_key_values("") == []
    with pytest.raises(InvalidArgument, match="ENV must have two arguments"):
        parse_key_values("lonely")
    with pytest.raises(InvalidArgument, match="LABEL must have two arguments"):
        parse_key_values("lonely", "LABEL")
    with pytest.raises(InvalidArgument, match="can't find = in \"b\""):
        parse_key_values("a=1 b")


def test_split_fields_splits_on_ascii_blanks_only() -> None:
    assert split_fields("a  b\tc") == ["a", "b", "c"]
    assert split_fields('"a b" c') == ['"a', 'b"', "c"]
    assert split_fields("") == []


def test_expanded_instruction_list_is_dockers() -> None:
    assert {"RUN", "CMD", "ENTRYPOINT", "SHELL", "ONBUILD", "HEALTHCHECK", "MAINTAINER"}.isdisjoint(
        EXPANDED_INSTRUCTIONS)
    assert {"ENV", "ARG", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "LABEL", "VOLUME", "STOPSIGNAL", "FROM"} == \
        EXPANDED_INSTRUCTIONS


SAFE = st.text(alphabet=string.ascii_letters + string.digits + "/.:,_-+@%^", min_size=0, max_size=20)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
VALUES = st.text(alphabet=string.printable, max_size=15)


@given(SAFE)
def test_text_without_special_characters_expands_to_itself(text: str) -> None:
    assert expand(text, ENV) == text


@given(NAMES, st.one_of(st.none(), VALUES), VALUES)
def test_default_and_alternative_forms_agree_with_posix_rules(name: str, value: str | None, word: str) -> None:
    env = {} if value is None else {name: value}
    quoted_word = "'" + word.replace("'", "") + "'"
    literal = word.replace("'", "")
    unset = value is None
    null = unset or value == ""
    def subst(op: str) -> str:
        return "${" + name + op + quoted_word + "}"

    assert expand(subst(":-"), env) == (literal if null else value)
    assert expand(subst("-"), env) == (literal if unset else value)
    assert expand(subst(":+"), env) == ("" if null else literal)
    assert expand(subst("+"), env) == ("" if unset else literal)
    assert expand('"${' + name + '}"', env) == (value or "")


@given(st.text(alphabet=string.printable, max_size=30))
def test_single_quotes_preserve_anything_but_a_quote(text: str) -> None:
    text = text.replace("'", "")
    assert expand("'" + text + "'", ENV) == text


@given(st.lists(st.text(alphabet=string.ascii_letters + "$'\" \\", min_size=1, max_size=8), max_size=5))
def test_double_quoting_every_word_makes_split_words_equal_expand(words: list[str]) -> None:
    escaped = ['"' + w.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"' for w in words]
    assert split_words(" ".join(escaped), ENV) == [w for w in words if w]
    assert [expand(e, ENV) for e in escaped] == words


@pytest.mark.parametrize(("word", "expected"), [
    ("${file#*.}", "tar.gz"),
    ("${file##*.}", "gz"),
    ("${file%.*}", "archive.tar"),
    ("${file%%.*}", "archive"),
    ("${file#nomatch}", "archive.tar.gz"),
    ("${file#}", "archive.tar.gz"),
    ("${file#a?c}", "hive.tar.gz"),
    ("${version#v}", "1.2.3"),
    ("${file/tar/zip}", "archive.zip.gz"),
    ("${file//a/A}", "Archive.tAr.gz"),
    ("${file/*./x.}", "x.gz"),
    ("${file//[/x}", "archive.tar.gz"),
    ("${path//\\//_}", "usr_local_bin"),
    ("${star#\\*}", "x*"),
    ("${star%\\*}", "*x"),
    ("${unset#x}", ""),
    ("${file//a/$$}", "rchive.tr.gz"),        # the replacement is expanded first: $$ is an unset variable
    ("${file/a/$version}", "v1.2.3rchive.tar.gz"),
    ("${file//*/R}", "R"),                    # Go's ReplaceAll: no second, empty match at the end
    ("${file//x*/-}", "archive.tar.gz"),     # a shell pattern: x then anything
    ("${empty//*/R}", "R"),
])
def test_pattern_substitutions_follow_buildkits_lexer(word: str, expected: str) -> None:
    env = {"file": "archive.tar.gz", "version": "v1.2.3", "path": "usr/local/bin", "star": "*x*", "empty": ""}
    assert expand(word, env) == expected


@pytest.mark.parametrize(("word", "message"), [
    ("${file:#x}", "unsupported modifier (:#)"),
    ("${file/x", "missing '/'"),
    ("${file/x/y", "missing '}'"),
    ("${file#\\x}", "invalid escape"),
])
def test_pattern_substitution_errors(word: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        expand(word, {"file": "f"})


def test_pattern_substitutions_agree_with_a_posix_shell() -> None:
    """busybox sh as the reference for '*' and '?' patterns (Docker's lexer has no bracket expressions)."""
    rng = random.Random(5)
    cases = []
    for _ in range(300):
        value = "".join(rng.choice("ab.c/") for _ in range(rng.randint(0, 8)))
        pattern = "".join(rng.choice("ab.*?c") for _ in range(rng.randint(1, 4)))
        op = rng.choice(["#", "##", "%", "%%", "/", "//"])
        if op in ("/", "//") and (not value or not pattern.strip("*")):
            continue  # shells and Go part ways on empty matches (busybox even loops on ${x//*/R})
        word = "${x" + op + pattern + ("/R}" if op in ("/", "//") else "}")
        cases.append((value, word))
    script = "".join(f"x='{value}'; printf '%s\\n' \"{word}\"\n" for value, word in cases)
    proc = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, text=True, check=True, timeout=30)
    theirs = proc.stdout.split("\n")[:-1]
    ours = [expand(word, {"x": value}) for value, word in cases]
    assert ours == theirs


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("${}:-+?#%/\\'\"` ax1*")), max_size=40), st.sampled_from(["\\", "`"]))
def test_expansion_of_any_text_succeeds_or_raises_invalid_argument(text: str, escape: str) -> None:
    env = {"a": "value", "x": ""}
    try:
        expanded = expand(text, env, escape)
    except InvalidArgument:
        return
    assert isinstance(expanded, str)
    assert isinstance(split_words(text, env, escape), list)
