from __future__ import annotations

import pytest

from berth.errors import InvalidArgument
from berth.oci.digest import Digest, chain_ids
from berth.oci.reference import Reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("127.0.0.1:5000/a/b:tag@" + D, "127.0.0.1:5000/a/b:tag@" + D, "127.0.0.1:5000/a/b:tag@" + D),
    ("busybox@" + D, "docker.io/library/busybox@" + D, "busybox@" + D),
    ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
    ("a-b__c/d.e", "docker.io/a-b__c/d.e:latest", "a-b__c/d.e:latest"),
])
def test_references_normalise_like_docker(text: str, full: str, familiar: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


@pytest.mark.parametrize("text,fragment", [
    ("BusyBox", "must be lowercase"),
    ("user/App", "must be lowercase"),
    ("a/../b", "not a valid repository name"),
    ("a/..", "not a valid repository name"),
    ("busybox:" + "t" * 129, "longer than 128"),
    ("busybox@sha256:abc", "invalid digest"),
    ("busybox@md5:" + "a" * 32, "invalid digest"),
    ("", "empty"),
    ("a//b", "not a valid repository name"),
    ("-a", "not a valid repository name"),
    ("a.b_c/x", "invalid registry host"),
    ("busybox:-x", "invalid tag"),
    ("x" * 300, "longer than 255"),
])
def test_invalid_references_are_refused_with_a_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid reference format") as info:
        Reference.parse(text)
    assert fragment in str(info.value)


def test_a_reference_without_a_tag_can_stay_untagged() -> None:
    assert Reference.parse("busybox", default_tag=False).tag == ""


def test_chain_ids_follow_the_image_spec() -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b])[1] == Digest.of(f"{a} {b}".encode())


@pytest.mark.parametrize("bad", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 64, "a" * 64])
def test_digests_are_strict(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Digest.parse(bad)
