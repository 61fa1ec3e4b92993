"""The real docker CLI pointed at berthd prints what it prints against a real dockerd for the same images:
images, image inspect, history, tag, rmi, load, save, import (ids and timestamps aside). Both daemons are spoken to
at API 1.41, dockerd 20.10's version, so version-dependent fields match."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import Daemon, busybox_rootfs_tar, docker, seeded_daemon  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.interop]
V141 = {"DOCKER_API_VERSION": "1.41"}
_ID = re.compile(r"(sha256:)?[0-9a-f]{64}|\b[0-9a-f]{12}\b")


@pytest.fixture(scope="module")
def pair(seeded_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
         ) -> Iterator[tuple[str, PrivateBerthd]]:
    tar = tmp_path_factory.mktemp("parity") / "seed.tar"
    docker(seeded_daemon.host, "save", "-o", str(tar), seeded_daemon.images.busybox, seeded_daemon.images.layered)
    with PrivateBerthd() as b:
        b.docker("load", "-i", str(tar))
        yield seeded_daemon.host, b


def both(pair: tuple[str, PrivateBerthd], *args: str, input: bytes | None = None) -> tuple[str, str]:
    host, b = pair
    d = docker(host, *args, input=input, env=V141, check=False)
    o = docker(b.host, *args, input=input, env=V141, check=False)
    assert d.returncode == o.returncode, (args, d.stderr, o.stderr)
    return (d.stdout + d.stderr).decode(), (o.stdout + o.stderr).decode()


def _no_ids(text: str) -> str:
    return _ID.sub("<id>", text)


def _table(text: str, ids: bool = False) -> list[list[str]]:
    """A CLI table with relative times (and, unless `ids`, ids) replaced, split into cells (the widths follow them)."""
    if not ids:
        text = _ID.sub("<id>", text.replace("<missing>", "<id>"))
    text = re.sub(r"(About an?|Less than an?|\d+) \w+ ago", "<time>", text)
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


def _inspect_key(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc.pop("GraphDriver")       # paths under each daemon's own root
    doc.pop("Metadata")          # LastTagTime: when each daemon tagged it
    return doc


@pytest.mark.parametrize("args", [
    ("images",), ("images", "-a"), ("images", "-q"), ("images", "--no-trunc"), ("images", "--digests"),
    ("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"), ("images", "busybox"),
    ("images", "--filter", "reference=berth-*"), ("images", "--format", "{{json .}}"),
])
def test_images_listings_match(pair: tuple[str, PrivateBerthd], args: tuple[str, ...]) -> None:
    d, o = both(pair, *args)
    if args == ("images", "-a"):   # dockerd keeps the classic builder's intermediate images; berth never had them
        d = "\n".join(line for line in d.splitlines() if not line.startswith("<none>")) + "\n"
    # dockerd orders images created within the same second at random: compare the header, then the sorted rows.
    # A table's widths follow its CREATED cells, which can cross a boundary ("59 seconds" / "About a minute") between
    # the two calls: tables are compared cell by cell with relative times replaced.
    header = 0 if args[-1] in ("-q", "{{json .}}") or "--format" in args and "table" not in args[-1] else 1
    if header:
        d_rows, o_rows = _table(d, ids=True), _table(o, ids=True)
        assert o_rows[:1] == d_rows[:1]
        assert sorted(o_rows[1:]) == sorted(d_rows[1:])
    else:
        assert sorted(o.splitlines()) == sorted(d.splitlines())
    assert o.endswith("\n") == d.endswith("\n")


def test_image_inspect_matches(pair: tuple[str, PrivateBerthd]) -> None:
    for ref in ("busybox:latest", "berth-layered:1"):
        d, o = both(pair, "image", "inspect", ref)
        dj, oj = json.loads(d)[0], json.loads(o)[0]
        dj.pop("Parent")           # the builder's intermediate image, which berth never saw
        oj.pop("Parent")
        assert _inspect_key(oj) == _inspect_key(dj)
    d, o = both(pair, "image", "inspect", "--format", "{{.Config.Cmd}} {{.RootFS.Layers}} {{.Size}}", "berth-layered:1")
    assert o == d
    d, o = both(pair, "image", "inspect", "no-such:image")
    assert o == d


def test_history_matches(pair: tuple[str, PrivateBerthd]) -> None:
    for args in (("history", "berth-layered:1"), ("history", "--no-trunc", "busybox"),
                 ("history", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "berth-layered:1")):
        d, o = both(pair, *args)
        assert _table(o) == _table(d)


def test_tag_and_rmi_print_the_same(pair: tuple[str, PrivateBerthd]) -> None:
    assert both(pair, "tag", "busybox:latest", "parity/bb:1")[0] == both(pair, "tag", "busybox", "parity/bb:2")[1] \
        == ""
    d, o = both(pair, "rmi", "parity/bb:1")
    assert o == d == "Untagged: parity/bb:1\n"
    both(pair, "tag", "busybox:latest", "parity/bb:1")
    d, o = both(pair, "rmi", "parity/bb:9")
    assert o == d
    d, o = both(pair, "tag", "no-such:image", "x:1")
    assert o == d


def test_import_and_load_print_the_same(pair: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(busybox_rootfs_tar())
    d, o = both(pair, "import", "-c", "CMD [\"sh\"]", str(rootfs), "parity/imported:1")
    assert _no_ids(o) == _no_ids(d) == "<id>\n"
    d, o = both(pair, "history", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "parity/imported:1")
    assert o == d
    host, b = pair
    saved = tmp_path / "saved.tar"
    docker(host, "save", "-o", str(saved), "parity/imported:1")
    both(pair, "rmi", "parity/imported:1")
    d, o = both(pair, "load", "-i", str(saved))
    assert o == d == "Loaded image: parity/imported:1\n"
    d, o = both(pair, "save", "-o", str(tmp_path / "again.tar"), "parity/imported:1")
    assert o == d == ""
