"""Reference checks and normalisation as the docker CLI does them before calling the daemon."""

from __future__ import annotations

import pytest

from berth.cli.refs import parse_normalized, try_familiar
from berth.errors import InvalidArgument


@pytest.mark.parametrize(("text", "name", "tag", "familiar"), [
    ("busybox", "docker.io/library/busybox", None, "busybox"),
    ("busybox:1.36", "docker.io/library/busybox", "1.36", "busybox"),
    ("team/app:v1", "docker.io/team/app", "v1", "team/app"),
    ("docker.io/library/x:1", "docker.io/library/x", "1", "x"),
    ("index.docker.io/x", "docker.io/library/x", None, "x"),
    ("localhost/a", "localhost/a", None, "localhost/a"),
    ("reg:5000/team/x:1", "reg:5000/team/x", "1", "reg:5000/team/x"),
    ("127.0.0.1:5000/a_b/c-d.e:t_1.x-2", "127.0.0.1:5000/a_b/c-d.e", "t_1.x-2", "127.0.0.1:5000/a_b/c-d.e"),
])
def test_names_normalise_like_docker(text: str, name: str, tag: str | None, familiar: str) -> None:
    ref = parse_normalized(text)
    assert (ref.name, ref.tag, ref.familiar_name) == (name, tag, familiar)


def test_digests_are_kept() -> None:
    ref = parse_normalized("x@sha256:" + "a" * 64)
    assert ref.digest == "sha256:" + "a" * 64 and ref.tag is None


@pytest.mark.parametrize(("text", "message"), [
    ("Bad:x", "invalid reference format: repository name (library/Bad) must be lowercase"),
    ("ok::x", "invalid reference format"),
    ("", "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
    ("x:" + "t" * 129, "invalid reference format"),
    ("-leading", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("reg:5000/Team/x", "invalid reference format: repository name (Team/x) must be lowercase"),
])
def test_bad_names_fail_with_dockers_words(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_normalized(text)
    assert str(info.value) == message


def test_repo_tag_entries_the_daemon_lists() -> None:
    assert try_familiar("busybox:latest") == ("busybox", "latest", None)
    assert try_familiar("<none>:<none>") is None
    assert try_familiar("x@sha256:" + "b" * 64) == ("x", None, "sha256:" + "b" * 64)
