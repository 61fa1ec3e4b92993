"""The parser, the expansion and the .dockerignore matcher against the real thing: a private dockerd (20.10,
classic builder, DOCKER_BUILDKIT=0) driven by the real docker CLI (28.x, which applies .dockerignore itself).
Every comparison runs twice, through the `daemon` fixture: against dockerd (berth's parser agrees with Docker's),
and against a private berthd seeded the same way (berth's builder prints, counts, refuses and copies as that parser
says, so as dockerd does).

- Error texts: Dockerfiles dockerd refuses are refused by berth's parser with the same message.
- "Step i/N : <text>" lines: dockerd prints each instruction's original text; berth's Instruction.original must be
  the same (continuations, comments inside continuations, escape directive, indentation).
- Expansion: a few hundred generated words, each in `ENV vN=<word>` (and LABEL), built once; the image's Env and
  Labels must equal berth's expand() of the same words. Only the forms dockerd 20.10 knows (${x:-w}, ${x:+w}).
- Config fields that are the parser's business (Healthcheck, OnBuild, Shell, ExposedPorts, Volumes, Cmd ...).
- .dockerignore: `COPY . /ctx` of a tricky tree under several pattern sets; the files that reach the image must
  be the ones berth's context_tar sends.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.build.context import context_tar, resolve_source_entries
from berth.build.dockerfile import DockerfileError, Instruction, healthcheck, parse
from berth.build.dockerignore import read_dockerignore
from berth.build.shellwords import expand, parse_words, split_words
from berth.errors import InvalidArgument, NotFound, UnsafePath
from tests import peers
from tests.berthd import PrivateBerthd
from tests.peers import Daemon, docker, seed_images

seeded_daemon = peers.seeded_daemon

pytestmark = [pytest.mark.interop, pytest.mark.root]

BUILD_ENV = {"DOCKER_BUILDKIT": "0"}
_STEP = re.compile(r"^Step \d+/\d+ : (.*)$")


@pytest.fixture(scope="module", params=["dockerd", "berthd"])
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon a comparison builds with: the seeded dockerd, or a private berthd seeded with the same images."""
    if request.param == "dockerd":
        yield request.getfixturevalue("seeded_daemon")
        return
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    workdir = tmp_path_factory.mktemp("seed-berthd")
    with PrivateBerthd() as b:
        yield Daemon(b.host, seed_images(b.host, workdir), workdir)


def build(daemon: Daemon, ctx: Path, *args: str) -> tuple[int, str, str]:
    proc = docker(daemon.host, "build", "--network=none", *args, str(ctx), env=BUILD_ENV, check=False)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def write_ctx(tmp_path: Path, dockerfile: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def image_id(stdout: str) -> str:
    match = re.search(r"Successfully built ([0-9a-f]+)", stdout)
    assert match, stdout
    return match.group(1)


def inspect(daemon: Daemon, ref: str) -> dict[str, Any]:
    out: list[dict[str, Any]] = json.loads(docker(daemon.host, "image", "inspect", ref).stdout)
    return out[0]


def rmi(daemon: Daemon, ref: str) -> None:
    docker(daemon.host, "rmi", "-f", ref, check=False)


BAD = {
    "unknown": "FROM busybox\nBOGUS x\n",
    "lowercase-unknown": "FROM busybox\n\npip install x\n",
    "unknown-flag": "FROM busybox\nCOPY --foo=bar a b\n",
    "flag-on-cmd": "FROM busybox\nCMD --version\n",
    "env-blank": "FROM busybox\nENV =x\n",
    "bad-stage-name": "FROM busybox AS 1x\n",
    "from-two-words": "FROM busybox x\n",
    "retries": "FROM busybox\nHEALTHCHECK --retries=0 CMD x\n",
    "interval-unit": "FROM busybox\nHEALTHCHECK --interval=5 CMD x\n",
    "interval-small": "FROM busybox\nHEALTHCHECK --timeout=10us CMD x\n",
    "healthcheck-type": "FROM busybox\nHEALTHCHECK RUN x\n",
    "shell-not-json": "FROM busybox\nSHELL /bin/sh -c\n",
    "onbuild-onbuild": "FROM busybox\nONBUILD ONBUILD RUN x\n",
    "onbuild-from": "FROM busybox\nONBUILD FROM x\n",
    "copy-one-arg": "FROM busybox\nCOPY a\n",
    "volume-empty": 'FROM busybox\nVOLUME [" "]\n',
    "workdir-none": "FROM busybox\nWORKDIR\n",
    "user-none": "FROM busybox\n  # c\nUSER\n",
    "expose-none": "FROM busybox\nEXPOSE\n",
    "dup-flag": "FROM busybox\nCOPY --chown=1 --chown=2 a b\n",
    "continued-error": "FROM busybox\nRUN true\nCOPY \\\n  --nope \\\n  a b\n",
    "after-escape-directive": "# escape=`\nFROM busybox\nRUN a `\n b\nBOGUS\n",
    "no-from": "RUN true\n",
    "json-non-string": 'FROM busybox\nCMD ["a", 1]\n',
    "env-one-word": "FROM busybox\nENV onlykey\n",
    "bad-escape": "# escape=x\nFROM busybox\n",
    "empty": "# nothing\n\n",
    "env-no-equals": "FROM busybox\nENV a=1 b\n",
}


def _daemon_error(stderr: str) -> str:
    line = stderr.strip().splitlines()[-1]
    return line.removeprefix("Error response from daemon: ")


@pytest.mark.parametrize("name", sorted(BAD))
def test_dockerd_and_berth_refuse_the_same_dockerfiles_with_the_same_message(
        daemon: Daemon, tmp_path: Path, name: str) -> None:
    text = BAD[name]
    rc, _, stderr = build(daemon, write_ctx(tmp_path, text))
    assert rc != 0
    theirs = _daemon_error(stderr)
    with pytest.raises(DockerfileError) as info:
        parse(text)
    ours = info.value
    if theirs.startswith("dockerfile parse error line"):
        assert str(ours) == theirs
    else:
        # dockerd reports the parser's own failures without a line ("failed to parse Dockerfile: ..."); berth
        # keeps the line when it has one.
        assert theirs.endswith(ours.reason.removeprefix("failed to parse Dockerfile: ")), (theirs, str(ours))


STEPS_DOCKERFILE = """\
# syntax=docker/dockerfile:1
# escape=`
ARG base=busybox
FROM ${base}:latest AS first
LABEL a="x y" `
      b=z `
# a comment inside the continuation

      c=w
  ENV   spaced   value with  spaces \x20\x20
ENV k1=v1 `
    k2="v 2"
EXPOSE 80/tcp `
\t  53/udp
MAINTAINER  someone <s@example.com>
ONBUILD   RUN echo built `
   from child
HEALTHCHECK --interval=30s --timeout=3s --start-period=1s --retries=2 `
  CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGQUIT
VOLUME /data /logs
VOLUME ["/json vol"]
USER 1000:1000
WORKDIR /srv/app
CMD echo "$HOME" 'single' \\not-an-escape
ENTRYPOINT ["/bin/sh", "-c"]
FROM first
ARG later=1
EXPOSE ${later}000
CMD [ "run" , "json" ]
"""


@pytest.mark.slow
def test_step_texts_and_parsed_config_match_dockerd(daemon: Daemon, tmp_path: Path) -> None:
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, STEPS_DOCKERFILE), "--no-cache")
    assert rc == 0, stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stdout)   # a warning in red may precede "Step 1/N"
    steps = [m.group(1) for line in plain.splitlines() if (m := _STEP.match(line))]
    df = parse(STEPS_DOCKERFILE)
    ours = [i.original for i in df.global_args]  # the classic builder prints the global ARGs as steps too
    for stage in df.stages:
        assert stage.from_instruction is not None
        ours.append(stage.from_instruction.original)
        ours += [i.original for i in stage.instructions]
    assert steps == ours
    assert df.warnings and "\n".join(df.warnings) in plain
    config = inspect(daemon, image_id(stdout))["Config"]
    try:
        first = df.stages[0].instructions
        by_kw: dict[str, list[Instruction]] = {}
        for instr in first:
            by_kw.setdefault(instr.keyword, []).append(instr)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        for instr in by_kw["ENV"]:
            base = dict(env)
            for key, value in instr.pairs():
                env[expand(key, base, df.escape)] = expand(value, base, df.escape)
        assert config["Env"] == [f"{k}={v}" for k, v in env.items()]
        labels = {expand(k, env, df.escape): expand(v, env, df.escape) for k, v in by_kw["LABEL"][0].pairs()}
        assert config["Labels"] == labels
        assert config["OnBuild"] is None  # the second stage ran the trigger, which clears it
        rc, first_out, stderr = build(daemon, tmp_path / "ctx", "--target", "first")
        assert rc == 0, stderr
        first_config = inspect(daemon, image_id(first_out))["Config"]
        assert first_config["OnBuild"] == [by_kw["ONBUILD"][0].args[0]]
        hc = healthcheck(by_kw["HEALTHCHECK"][0])
        assert config["Healthcheck"] == {"Test": list(hc.test), "Interval": hc.interval_ns,
                                         "Timeout": hc.timeout_ns, "StartPeriod": hc.start_period_ns,
                                         "Retries": hc.retries}
        assert config["Shell"] == list(by_kw["SHELL"][0].args)
        assert config["StopSignal"] == by_kw["STOPSIGNAL"][0].args[0]
        assert set(config["Volumes"]) == {v for i in by_kw["VOLUME"] for v in i.args}
        assert config["User"] == by_kw["USER"][0].args[0]
        assert config["Entrypoint"] == list(by_kw["ENTRYPOINT"][0].args)
        ports = {p for i in by_kw["EXPOSE"] for word in i.args for p in split_words(word, env, df.escape)}
        ports |= {p for word in df.stages[1].instructions[1].args for p in split_words(word, {"later": "1"})}
        assert set(config["ExposedPorts"]) == {p if "/" in p else p + "/tcp" for p in ports}
        assert config["Cmd"] == list(df.stages[1].instructions[2].args)
    finally:
        rmi(daemon, image_id(stdout))


def test_global_args_are_counted_and_printed_as_steps_after_the_warnings(daemon: Daemon, tmp_path: Path) -> None:
    text = "ARG a=1\nARG b\nFROM busybox\nLABEL x=$a \\\n\n    y=2\nARG a\nLABEL z=$a\n"
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, text), "--no-cache")
    assert rc == 0, stderr
    rmi(daemon, image_id(stdout))
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stdout)
    df = parse(text)
    assert df.stages[0].from_instruction is not None
    texts = [*(i.original for i in df.global_args), df.stages[0].from_instruction.original,
             *(i.original for i in df.stages[0].instructions)]
    expected = [f"Step {n}/{len(texts)} : {t}" for n, t in enumerate(texts, 1)]
    assert [line for line in plain.splitlines() if line.startswith("Step ")] == expected
    warnings = "\n".join(df.warnings) + "\n"
    assert df.warnings and warnings in plain and plain.index(warnings) < plain.index(expected[0])
    # dockerd prints no ' ---> ' line after a global ARG
    assert plain.split(expected[2])[0].count(" ---> ") == 0


def test_expose_splits_the_expanded_words_into_ports(daemon: Daemon, tmp_path: Path) -> None:
    text = 'FROM busybox\nENV PORTS="80 443/udp"\nARG more="8080  9090/tcp"\nEXPOSE $PORTS ${more} 7000\n'
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, text))
    assert rc == 0, stderr
    ports = inspect(daemon, image_id(stdout))["Config"]["ExposedPorts"]
    rmi(daemon, image_id(stdout))
    env = {"PORTS": "80 443/udp", "more": "8080  9090/tcp"}
    words = [w for arg in parse(text).stages[0].instructions[-1].args for w in split_words(arg, env)]
    assert len(words) == 5
    assert set(ports) == {w if "/" in w else w + "/tcp" for w in words}


def test_target_takes_stage_names_only(daemon: Daemon, tmp_path: Path) -> None:
    text = "FROM busybox AS First\nLABEL stage=first\nFROM busybox\nLABEL stage=second\n"
    ctx = write_ctx(tmp_path, text)
    rc, _, stderr = build(daemon, ctx, "--target", "0")
    assert rc != 0
    with pytest.raises(InvalidArgument) as info:
        parse(text).stage("0", allow_index=False)
    assert _daemon_error(stderr) == str(info.value)
    rc, stdout, stderr = build(daemon, ctx, "--target", "FIRST")   # names are case-insensitive
    assert rc == 0, stderr
    labels = inspect(daemon, image_id(stdout))["Config"]["Labels"]
    rmi(daemon, image_id(stdout))
    assert labels == {"stage": "first"}


# --- expansion ------------------------------------------------------------------------------------------------

_ATOMS = ["a", "b c", "$x", "${x}", "$empty", "${unset}", "$sp", "${x:-d}", "${empty:-d}", "${unset:-d e}",
          "${x:+alt}", "${empty:+alt}", "${unset:+alt}", "'$x'", '"$x"', '"a b"', "'a b'", '\\"', "\\$x", '"\\$x"',
          '"\\\\"', "\\\\", "$", "${x:-$sp}", '"${unset:-"in"}"', "-", "=", ":", "'\"'", "\"'\"", "${x:-'q'}",
          "$x$x", "${x}y", "$xy", '"\\a"', "\\a", "caf\u00e9", "$1", "${x:-${unset:-deep}}", "a\\ b"]


def _words(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out = list(_ATOMS)
    while len(out) < count:
        out.append("".join(rng.choice(_ATOMS) for _ in range(rng.randint(1, 4))))
    return out


def test_expansion_matches_dockerd_for_generated_words(daemon: Daemon, tmp_path: Path) -> None:
    base_env = {"x": "val", "empty": "", "sp": "s p"}
    words = [w for w in _words(7, 240) if len(parse_words("v=" + w)) == 1]
    lines = ["FROM busybox", "ENV x=val empty= sp=\"s p\""]
    ours_env: dict[str, str] = {}
    ours_labels: dict[str, str] = {}
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env_pairs: list[str] = []
    label_pairs: list[str] = []
    for n, word in enumerate(words):
        try:
            expected = expand(word, {"PATH": path, **base_env})
        except InvalidArgument:
            continue
        # one ENV and one LABEL for all words (each step costs dockerd a container commit): every pair of an
        # instruction is expanded with the environment from before it, the previous ENV line's
        env_pairs.append(f"v{n}={word}")
        label_pairs.append(f"l{n}={word}")
        ours_env[f"v{n}"] = expected
        ours_labels[f"l{n}"] = expected
    lines += ["ENV " + " ".join(env_pairs), "LABEL " + " ".join(label_pairs)]
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, "\n".join(lines) + "\n"))
    assert rc == 0, stderr[-2000:]
    config = inspect(daemon, image_id(stdout))["Config"]
    rmi(daemon, image_id(stdout))
    theirs_env = dict(e.split("=", 1) for e in config["Env"])
    for key, value in ours_env.items():
        assert theirs_env[key] == value, (key, words[int(key[1:])])
    for key, value in ours_labels.items():
        assert config["Labels"][key] == value, (key, words[int(key[1:])])


# Not compared: "${x" and "${x!y}" (dockerd 20.10 says "missing ':' in substitution"; berth follows the newer
# lexer, which also knows ${x-w}, ${x+w} and ${x?w}, and says "missing '}'" / "unsupported modifier").
@pytest.mark.parametrize("word", ["'open", '"open', "${}", "${:-a}", "${x:-a", "${x:-'a}"])
def test_expansion_errors_match_dockerd(daemon: Daemon, tmp_path: Path, word: str) -> None:
    rc, _, stderr = build(daemon, write_ctx(tmp_path, f"FROM busybox\nENV a={word}\n"))
    assert rc != 0
    with pytest.raises(InvalidArgument) as info:
        expand(word, {})
    assert _daemon_error(stderr) == str(info.value)


# FROM and the global ARGs are expanded as their steps run: the Step lines up to the failing one come first, then
# the error in the stream (not an HTTP error), without a line number
FROM_ERRORS = {
    "from": ("ARG v=busybox\nFROM ${v:-a\n", 2, "${v:-a"),
    "global-arg": ("ARG v=${x:-a\nFROM busybox\n", 1, "${x:-a"),
    "blank-base": ("ARG v\nFROM ${v}\n", 2, ""),
}


@pytest.mark.parametrize("name", sorted(FROM_ERRORS))
def test_from_and_global_arg_errors_follow_their_step_lines(daemon: Daemon, tmp_path: Path, name: str) -> None:
    text, printed, bad_word = FROM_ERRORS[name]
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, text))
    assert rc != 0
    df = parse(text)
    assert df.stages[0].from_instruction is not None
    texts = [i.original for i in df.global_args] + [df.stages[0].from_instruction.original]
    assert [line for line in stdout.splitlines() if line.startswith("Step ")] == \
        [f"Step {n}/{len(texts)} : {t}" for n, t in enumerate(texts[:printed], 1)]
    if bad_word:
        with pytest.raises(InvalidArgument) as info:
            expand(bad_word, {})
        expected = str(info.value)
    else:
        expected = f"base name ({df.stages[0].base}) should not be blank"
    assert stderr.strip().splitlines()[-1] == expected


# --- .dockerignore ----------------------------------------------------------------------------------------------

TREE = [
    "a.log", "keep.log", "sub/b.log", "sub/keep.log", "x.tmp", "deep/er/y.tmp", "build/out.o", "build/keep",
    "build/keep2/z", "docs/README.md", "docs/a/b.md", "docs/a/c.txt", "abs-root.txt", "sub/abs-root.txt",
    "dot-prefix.txt", "norm.txt", "node_modules/m/index.js", "node_modules/keep/k.js", "a1.dat", "b2.dat",
    "c3.dat", "aab", "ab", "x/y/z", "x/yz", "space name.txt", "star*file", "q?mark", ".hidden/h", "src/app.py",
    "src/app.pyc", "src/pkg/__pycache__/m.pyc", "Dockerfile.other",
]

IGNORE_SETS = {
    "mixed": """\
# comment
*.log
!keep.log
**/*.tmp
build
!build/keep
docs/**/*.md
!docs/README.md
/abs-root.txt
./dot-prefix.txt
sub/../norm.txt
node_modules
!node_modules/keep
[ab]?.dat
a+b
x/y/
""",
    "exclude-all-but": """\
*
!src
src/**/*.pyc
!docs/a
!*.dat
""",
    "double-star": """\
**/__pycache__
**/*.pyc
**/keep*
!sub/keep.log
.hidden
space?name.txt
star\\*file
q\\?mark
""",
}


def _make_tree(root: Path) -> None:
    for name in TREE:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (root / "link-out").symlink_to("/etc/passwd")
    (root / "sub" / "link-rel").symlink_to("../a.log")


def _our_names(ctx: Path) -> set[str]:
    buf = io.BytesIO()
    context_tar(ctx, "Dockerfile", read_dockerignore(ctx), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


@pytest.mark.parametrize("name", sorted(IGNORE_SETS))
def test_dockerignore_matches_the_docker_cli(daemon: Daemon, tmp_path: Path, name: str) -> None:
    ctx = write_ctx(tmp_path, "FROM busybox\nCOPY . /ctx\nRUN cd /ctx && find . -mindepth 1 | sort\n")
    _make_tree(ctx)
    (ctx / ".dockerignore").write_text(IGNORE_SETS[name])
    rc, stdout, stderr = build(daemon, ctx, "--rm", "--no-cache")
    assert rc == 0, stderr
    theirs = {line[2:] for line in stdout.splitlines() if line.startswith("./")}
    rmi(daemon, image_id(stdout))
    sent = _our_names(ctx)
    ours = sent | {"/".join(name.split("/")[:i]) for name in sent for i in range(1, name.count("/") + 1)}
    # the daemon drops the Dockerfile and .dockerignore from the context when .dockerignore excludes them
    assert theirs - {"Dockerfile", ".dockerignore"} == ours - {"Dockerfile", ".dockerignore"}


# --- line joining, generated ------------------------------------------------------------------------------------

_PIECES = ["a", "b c", "  ", "\t", "x\\y", "'q'", '"d q"', "$v", "#not-comment", "caf\u00e9", "=", "(p)"]


def _generated_dockerfile(seed: int, count: int, escape: str, pieces: list[str]) -> str:
    """MAINTAINER steps (any text is one argument, each is a cheap step) split over continuations, with comment
    lines, blank and blank-looking lines, blanks after the escape, CRLF endings and indentation."""
    rng = random.Random(seed)
    lines = [f"# escape={escape}"] if escape != "\\" else []
    lines.append("FROM busybox")
    for _ in range(count):
        parts = [rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(1, 4))]
        text = rng.choice(["", "  ", "\t"]) + "MAINTAINER " + "w" + parts[0]
        for part in parts[1:]:
            text += escape + rng.choice(["", " ", " \t"])
            lines.append(text)
            for _ in range(rng.choice([0, 0, 1, 2])):
                lines.append(rng.choice(["# comment " + part, "   # indented comment", ""]))
            text = rng.choice(["", " ", "\t"]) + part
        lines.append(text + rng.choice(["", "   "]))
        if rng.random() < 0.2:
            lines.append("")
    return "".join(line + rng.choice(["\n", "\n", "\r\n"]) for line in lines)


@pytest.mark.parametrize(("escape", "seed", "tricky"), [("\\", 11, False), ("`", 12, False), ("\\", 13, True),
                                                        ("`", 14, True)])
def test_generated_continuations_join_like_dockerd(daemon: Daemon, tmp_path: Path, escape: str, seed: int,
                                                   tricky: bool) -> None:
    # tricky: pieces ending in an escaped escape, which Docker does not take as a continuation (the generated
    # file then usually breaks; both must break the same way)
    pieces = _PIECES + ([escape * 2, "z" + escape * 2] if tricky else [])
    text = _generated_dockerfile(seed, 30, escape, pieces)
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, text), "--no-cache")
    if rc != 0:
        with pytest.raises(DockerfileError) as info:
            parse(text)
        assert str(info.value) == _daemon_error(stderr)
        assert tricky, stderr
        return
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stdout)
    steps = [m.group(1) for line in plain.split("\n") if (m := _STEP.match(line))]
    df = parse(text)
    assert df.escape == escape
    ours = [df.stages[0].from_instruction.original if df.stages[0].from_instruction else ""]
    ours += [i.original for i in df.stages[0].instructions]
    assert steps == ours
    config = inspect(daemon, image_id(stdout))
    rmi(daemon, image_id(stdout))
    assert config["Author"] == df.stages[0].instructions[-1].args[0]


# --- JSON or shell form -----------------------------------------------------------------------------------------

_FORMS = ['["a", "b c"]', '[ "a" ]', '["a"] trailing', "[]", "['a']", '["a" "b"]', '["a",]', '["\\u00e9\\n"]',
          '[ "x",  "y" ]  ', "[NaN]", "not json", '["a", ["b"]]', '["a", null]', '{"a": 1}', '["unterminated']


@pytest.mark.parametrize("form", _FORMS)
def test_json_form_detection_matches_dockerd(daemon: Daemon, tmp_path: Path, form: str) -> None:
    text = f"FROM busybox\nCMD {form}\n"
    rc, stdout, stderr = build(daemon, write_ctx(tmp_path, text))
    try:
        instr = parse(text).stages[0].instructions[0]
    except DockerfileError as exc:
        assert rc != 0
        assert _daemon_error(stderr).endswith(exc.reason)
        return
    assert rc == 0, stderr
    cmd = inspect(daemon, image_id(stdout))["Config"]["Cmd"]
    rmi(daemon, image_id(stdout))
    expected = list(instr.args) if instr.json_form else ["/bin/sh", "-c", instr.args[0]]
    assert cmd == expected


# --- COPY sources ---------------------------------------------------------------------------------------------------

def _copy_tree(root: Path) -> None:
    for name in ("a.txt", "b.txt", "c.md", "dir/d.txt", "dir/sub/e.txt", "dir2/f.txt", "[x].txt", "star*"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (root / "link-to-a").symlink_to("a.txt")
    (root / "link-abs").symlink_to("/dir")
    (root / "link-out").symlink_to("../../outside.txt")
    (root.parent / "outside.txt").write_text("outside")


def _expected_copy(ctx: Path, patterns: list[str]) -> set[str]:
    out: set[str] = set()
    for entry in resolve_source_entries(ctx, patterns):
        if entry.path.is_dir():
            out |= {str(p.relative_to(entry.path)) for p in entry.path.rglob("*")}
        else:
            out.add(entry.name.rsplit("/", 1)[-1])
    return out


@pytest.mark.parametrize("sources", [["a.txt"], ["*.txt"], ["dir"], ["dir/*"], ["d?r*"], ["*/*.txt"], ["/c.md"],
                                     ["./a.txt", "b.txt"], ["link-to-a"], ["link-abs/d.txt"], ["[[]x].txt"],
                                     ["star*"], ["missing.txt"], ["*.nothing"], ["../outside.txt"],
                                     ["link-out"], ["dir/../a.txt"], ["dir/../../a.txt"]])
def test_copy_sources_resolve_as_dockerd_copies_them(daemon: Daemon, tmp_path: Path,
                                                     sources: list[str]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _copy_tree(ctx)
    (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {' '.join(sources)} /out/\n"
                                    "RUN cd /out && find . -mindepth 1 | sort\n")
    rc, stdout, stderr = build(daemon, ctx, "--no-cache")
    try:
        expected = _expected_copy(ctx, sources)
    except (NotFound, UnsafePath) as exc:
        assert rc != 0, stdout
        assert str(exc).split(":")[0] in stderr, (str(exc), stderr)
        return
    assert rc == 0, stderr
    rmi(daemon, image_id(stdout))
    theirs = {line[2:] for line in stdout.splitlines() if line.startswith("./")}
    assert theirs == expected
