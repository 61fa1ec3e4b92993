"""A corpus of real-world Dockerfiles (tests/build/dockerfiles/*.Dockerfile) and what the parser must make of
each (the .json beside it, reviewed by hand against Docker's rules: continuations, comments inside them, the
escape directive, heredocs, JSON and shell forms, flags, ONBUILD triggers).

The interop half hands the same files to a real dockerd (classic builder): it must not refuse them as a parse
error, and its first "Step 1/N : ..." line (printed before the base image pull fails, there is no network) must
show berth's step count and first instruction; its empty-continuation warnings must be berth's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from berth.build.dockerfile import Dockerfile, Instruction, parse
from tests import peers
from tests.peers import Daemon, docker

seeded_daemon = peers.seeded_daemon

CORPUS = Path(__file__).parent / "dockerfiles"
FILES = sorted(p.stem for p in CORPUS.glob("*.Dockerfile"))


def _instr(i: Instruction) -> dict[str, Any]:
    d: dict[str, Any] = {"line": i.line, "keyword": i.keyword, "args": list(i.args)}
    if i.json_form:
        d["json"] = True
    if i.flags:
        d["flags"] = [list(f) for f in i.flags]
    if i.heredocs:
        d["heredocs"] = [{"name": h.name, "content": h.content, "expand": h.expand, "chomp": h.chomp}
                         for h in i.heredocs]
    if i.trigger is not None:
        d["trigger"] = _instr(i.trigger)
    if i.end_line != i.line:
        d["end_line"] = i.end_line
    return d


def _dump(df: Dockerfile) -> dict[str, Any]:
    return {"escape": df.escape, "syntax": df.syntax, "global_args": [_instr(i) for i in df.global_args],
            "stages": [{"name": s.name, "base": s.base, "platform": s.platform, "line": s.line,
                        "instructions": [_instr(i) for i in s.instructions]} for s in df.stages]}


def test_the_corpus_is_not_empty() -> None:
    assert len(FILES) >= 10


@pytest.mark.parametrize("name", FILES)
def test_corpus_dockerfile_parses_as_expected(name: str) -> None:
    text = (CORPUS / f"{name}.Dockerfile").read_text()
    expected = json.loads((CORPUS / f"{name}.json").read_text())
    assert _dump(parse(text)) == expected


@pytest.mark.parametrize("name", FILES)
def test_parsing_is_stable_under_crlf_line_endings(name: str) -> None:
    text = (CORPUS / f"{name}.Dockerfile").read_text()
    crlf = _dump(parse(text.replace("\n", "\r\n")))
    for stage in crlf["stages"]:
        for instr in stage["instructions"]:
            for doc in instr.get("heredocs", ()):
                doc["content"] = doc["content"].replace("\r\n", "\n")   # heredoc bodies keep their line endings
    assert crlf == _dump(parse(text))


# dockerd 20.10's classic builder predates heredocs, COPY --link/--parents, ADD --checksum and the predefined
# $BUILDPLATFORM (its FROM --platform=$BUILDPLATFORM fails before "Step 1")
_TOO_NEW_FOR_DOCKERD_20 = {"heredocs", "copy-add-forms", "go-multistage"}
_STEP1 = re.compile(r"^Step 1/(\d+) : (.*)$", re.MULTILINE)


@pytest.mark.interop
@pytest.mark.root
@pytest.mark.parametrize("name", [n for n in FILES if n not in _TOO_NEW_FOR_DOCKERD_20])
def test_dockerd_counts_the_same_steps(seeded_daemon: Daemon, tmp_path: Path, name: str) -> None:
    text = (CORPUS / f"{name}.Dockerfile").read_text()
    (tmp_path / "Dockerfile").write_text(text)
    proc = docker(seeded_daemon.host, "build", "--network=none", str(tmp_path), env={"DOCKER_BUILDKIT": "0"},
                  check=False)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout.decode(errors="replace"))
    err = proc.stderr.decode(errors="replace")
    assert "parse error" not in err and "failed to parse" not in err, err
    match = _STEP1.search(out)
    assert match, out + err
    df = parse(text)
    # the classic builder counts (and prints) the global ARGs as steps too
    assert int(match.group(1)) == len(df.global_args) + sum(1 + len(s.instructions) for s in df.stages)
    first = df.global_args[0] if df.global_args else df.stages[0].from_instruction
    assert first is not None and match.group(2) == first.original
    if df.warnings:
        assert "\n".join(df.warnings) in re.sub(r"\x1b\[[0-9;]*m", "", out + err)
