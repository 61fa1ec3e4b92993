""".dockerignore patterns with Docker's rules, and Go's filepath.Match."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import random
import string
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.build.context import context_tar
from berth.build.dockerignore import Matcher, Pattern, go_clean, go_match, parse_dockerignore, read_dockerignore
from berth.errors import InvalidArgument


def matcher(text: str) -> Matcher:
    return Matcher(parse_dockerignore(text))


def test_reading_strips_comments_blanks_and_leading_slashes() -> None:
    patterns = parse_dockerignore("\ufeff# comment\n\n  /foo/  \n ./bar/../baz\n!  /keep\n #not a comment\n")
    assert [str(p) for p in patterns] == ["foo", "baz", "!keep", "#not a comment"]


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    ("foo", "foo", True),
    ("foo", "foo/bar", True),            # a matched parent excludes what is inside
    ("foo", "a/foo", False),
    ("*.md", "README.md", True),
    ("*.md", "docs/x.md", False),        # '*' does not cross '/'
    ("*/*.md", "docs/x.md", True),
    ("**/*.md", "docs/x.md", True),
    ("**/*.md", "x.md", True),
    ("**/*.md", "a/b/c/x.md", True),
    ("**", "anything/at/all", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**", "a", False),
    ("a/**", "a/x", True),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("[a-c].txt", "b.txt", True),
    ("[a-c].txt", "d.txt", False),
    ("[^a].txt", "b.txt", True),
    ("file.txt", "fileXtxt", False),     # '.' is literal
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("*\\*", "a*", True),
    ("*\\*", "ab", False),
    ("*\nfoo\n!foo/keep", "foo/keep", False),
    ("*\n!foo\nfoo/drop", "foo/drop", True),
    ("foo\n!foo/keep\nfoo/keep/no", "foo/keep/no", True),
    ("foo\n!foo/keep", "foo/other", True),
    ("*.log\n!important.log", "important.log", False),
    ("*.log\n!important.log\n*.log", "important.log", True),   # the last match wins
    ("/abs", "abs", True),
    ("./rel/", "rel/x", True),
    ("..", "x", False),
    ("a+b", "aab", False),               # regular-expression characters are literal
    ("a+b", "a+b", True),
    ("a(b|c)", "ab", False),
    ("[a-z]+", "a+", True),
    ("star\\*", "star*", True),
    ("star\\*", "starx", False),
    ("**foo", "xfoo", True),             # '**' first: a suffix test
    ("**/foo", "foo", True),
    ("**/foo", "a/xfoo", False),
    ("foo/**", "foo/a/b", True),
    ("foo/**", "foo", False),
    ("d/f\n!d", "d/f", True),           # the walk's parent results: '!d' never matched 'd' (it was skipped)
])
def test_docker_pattern_rules(patterns: str, path: str, excluded: bool) -> None:
    assert matcher(patterns).excluded(path) is excluded


def test_must_walk_uses_dockers_literal_prefix_test() -> None:
    m = matcher("dir\n!dir/keep\n!**/deep")
    assert m.has_exclusions
    assert m.must_walk("dir")
    assert not m.must_walk("di")
    assert not m.must_walk("other")
    assert not matcher("dir").must_walk("dir")


def test_with_patterns_appends() -> None:
    m = matcher("*").with_patterns(Pattern.parse("!Dockerfile"))
    assert not m.excluded("Dockerfile")
    assert m.excluded("other")


@pytest.mark.parametrize("bad", ["[", "a[", "[]", "[a-]", "a\\", "!"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_dockerignore(bad + "\n")


def test_read_dockerignore(tmp_path: Path) -> None:
    assert read_dockerignore(tmp_path) is None
    (tmp_path / ".dockerignore").write_text("*.tmp\n")
    m = read_dockerignore(tmp_path)
    assert m is not None and m.excluded("x.tmp") and not m.excluded("x")


@pytest.mark.parametrize(("pattern", "name", "matched"), [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "ab/c", False),
    ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("*x", "xxx", True),
])
def test_go_match_agrees_with_gos_own_test_table(pattern: str, name: str, matched: bool) -> None:
    assert go_match(pattern, name) is matched


@pytest.mark.parametrize("pattern", ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a["])
def test_go_match_refuses_gos_bad_patterns(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        go_match(pattern, "x")


@pytest.mark.parametrize(("path", "clean"), [
    ("", "."), ("a/b/../c", "a/c"), ("/../x", "/x"), ("../../x", "../../x"), ("a//b/./", "a/b"), ("//a", "/a"),
])
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


SEGMENT = st.text(alphabet="abc.", min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
PATHS = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
GLOBS = st.lists(st.text(alphabet="abc.*?", min_size=1, max_size=4).filter(lambda s: "**" not in s),
                 min_size=1, max_size=3).map("/".join)


@given(GLOBS, PATHS)
def test_matcher_pattern_agrees_with_filepath_match_without_double_star(glob: str, path: str) -> None:
    assert Pattern.parse(glob).matches(path) == go_match(go_clean(glob), path)


@given(GLOBS, st.text(alphabet="abc.", min_size=1, max_size=6))
def test_go_match_of_one_segment_agrees_with_fnmatch(glob: str, name: str) -> None:
    if "/" in glob:
        return
    assert go_match(glob, name) == fnmatch.fnmatchcase(name, glob)


@given(st.lists(st.tuples(st.booleans(), GLOBS), min_size=1, max_size=4), SEGMENT)
def test_the_last_matching_pattern_decides(patterns: list[tuple[bool, str]], name: str) -> None:
    # through the file reader, which takes the '!' off before it cleans (so '!?/../?' stays a negation of '?';
    # Pattern.parse, like Docker's NewPatternMatcher, cleans the whole text and would lose it)
    m = Matcher(parse_dockerignore("\n".join(("!" if neg else "") + glob for neg, glob in patterns)))
    expected = False
    for neg, glob in patterns:
        if Pattern.parse(glob).matches(name):
            expected = not neg
    assert m.excluded(name) == expected


@given(st.lists(st.tuples(st.booleans(), GLOBS), min_size=0, max_size=4), PATHS, st.booleans())
def test_a_last_pattern_naming_the_path_itself_decides(patterns: list[tuple[bool, str]], path: str,
                                                       negate: bool) -> None:
    m = Matcher([*(Pattern.parse(("!" if neg else "") + glob) for neg, glob in patterns),
                 Pattern.parse(("!" if negate else "") + path)])
    assert m.excluded(path) is not negate


@given(st.lists(GLOBS, min_size=1, max_size=4), PATHS)
def test_a_path_no_pattern_touches_is_kept(globs: list[str], path: str) -> None:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    m = Matcher(Pattern.parse(g) for g in globs)
    if not any(Pattern.parse(g).matches(p) for g in globs for p in prefixes):
        assert not m.excluded(path)


@given(st.text(alphabet=string.ascii_letters + "/._-", min_size=1, max_size=20))
def test_a_pattern_without_special_characters_matches_itself_and_its_contents(name: str) -> None:
    clean = go_clean(name).lstrip("/")
    if clean in (".", "", "..") or clean.startswith("../"):
        return
    m = matcher(name)
    assert m.excluded(clean)
    assert m.excluded(clean + "/inside")


# --- against the docker CLI's own walk ------------------------------------------------------------------------------

def _random_case(rng: random.Random) -> tuple[list[str], str]:
    names = ["a", "b", "ab", "a.b", "x", "d"]
    files = sorted({"/".join(rng.choice(names) for _ in range(rng.randint(1, 3))) for _ in range(12)})
    atoms = ["a", "b", "ab", "*", "?", "**", "[ab]", "a*", "*.b", "x", "d", "[^a]", "a?", "\\a"]
    lines = []
    for _ in range(rng.randint(1, 5)):
        pattern = "/".join(rng.choice(atoms) for _ in range(rng.randint(1, 3)))
        prefix = rng.choice(["", "", "!", "/", "./", "!/"])
        lines.append(prefix + pattern + rng.choice(["", "", "/"]))
    return files, "\n".join(lines) + "\n"


def _docker_cli_sends(tmp: Path, ctx: Path) -> set[str]:
    from tests.cli.tiny_daemon import Reply, TinyDaemon
    from tests.peers import DOCKER_CLI

    stream = [json.dumps(m).encode() + b"\r\n" for m in ({"aux": {"ID": "sha256:" + "0" * 64}},)]
    with TinyDaemon(tmp / "d.sock") as daemon:
        daemon.route("POST", "/v1.41/build", Reply(200, stream))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "DOCKER_BUILDKIT": "0",
               "DOCKER_CONFIG": str(tmp / "cfg")}
        proc = subprocess.run([DOCKER_CLI, "-H", f"unix://{daemon.socket_path}", "build", str(ctx)], env=env,
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        (seen,) = [s for s in daemon.seen if "/build" in s.path]
    with tarfile.open(fileobj=io.BytesIO(seen.body)) as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


def _berth_sends(ctx: Path) -> set[str]:
    buf = io.BytesIO()
    context_tar(ctx, "Dockerfile", read_dockerignore(ctx), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


@pytest.mark.interop
@pytest.mark.parametrize("seed", range(6))
def test_random_dockerignores_leave_out_what_the_docker_cli_leaves_out(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for case in range(8):
        files, ignore = _random_case(rng)
        ctx = tmp_path / f"ctx{case}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM x\n")
        for name in files:
            path = ctx / name
            if any(p.is_file() for p in [*path.parents][:-1] if p != ctx and p.is_relative_to(ctx)):
                continue  # a file where this one needs a directory
            if path.is_dir():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)
        (ctx / ".dockerignore").write_text(ignore)
        assert _berth_sends(ctx) == _docker_cli_sends(tmp_path, ctx), (ignore, sorted(files))


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("ab/.*?[]^!\\-+(){}|$ ")), max_size=20), PATHS)
def test_any_pattern_is_refused_cleanly_or_matches_without_error(pattern: str, path: str) -> None:
    try:
        matcher = Matcher(parse_dockerignore(pattern + "\n"))
    except InvalidArgument:
        return
    assert matcher.excluded(path) in (True, False)
