"""Commands that show a progress stream (bootstrap, load, import): what they send and how they print answers,
including errors that arrive inside the stream after its 200. The daemon is tests/cli/tiny_daemon.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cli.tiny_daemon import Reply, TinyDaemon

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[TinyDaemon]:
    with TinyDaemon(tmp_path / "berth.sock") as d:
        yield d


def berth(d: TinyDaemon, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BERTH_NO_AUTOSTART": "1"}
    return subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", f"unix://{d.socket_path}", *args],
                          input=input.decode("latin-1") if input is not None else None, capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60)


def lines(*messages: object) -> list[bytes]:
    return [json.dumps(m).encode() + b"\r\n" for m in messages]


def query_of(d: TinyDaemon, path: str) -> dict[str, list[str]]:
    seen = [s for s in d.seen if s.path.split("?")[0] == path]
    assert seen, [s.path for s in d.seen]
    return parse_qs(urlsplit(seen[-1].path).query)


def test_bootstrap_asks_the_berth_endpoint_and_prints_progress_and_the_id(daemon: TinyDaemon) -> None:
    daemon.route("POST", "/v1.41/berth/images/bootstrap", Reply(200, lines(
        {"status": "Building rootfs from busybox-static"},
        {"status": "Downloading", "id": "layer", "progressDetail": {"current": 1, "total": 2}},
        {"aux": {"ID": "sha256:" + "c" * 64}},
        {"stream": "Tagged busybox:latest\n"},
    )))
    proc = berth(daemon, "image", "bootstrap", "busybox")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("Building rootfs from busybox-static\nTagged busybox:latest\n"
                           f"busybox:latest: sha256:{'c' * 64}\n")
    assert query_of(daemon, "/v1.41/berth/images/bootstrap") == {"base": ["busybox"], "tag": ["busybox:latest"]}


def test_bootstrap_debian_with_a_tag(daemon: TinyDaemon) -> None:
    daemon.route("POST", "/v1.41/berth/images/bootstrap", Reply(200, lines({"aux": {"ID": "sha256:ab"}})))
    proc = berth(daemon, "image", "bootstrap", "-t", "base/deb:12", "debian:bookworm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "base/deb:12: sha256:ab\n"
    assert query_of(daemon, "/v1.41/berth/images/bootstrap") == {"base": ["debian:bookworm"],
                                                                 "tag": ["base/deb:12"]}


@pytest.mark.parametrize(("args", "message"), [
    (["alpine"], "unknown bootstrap base 'alpine': choose one of busybox, debian:bookworm"),
    (["-t", "Bad:Tag", "busybox"], 'invalid tag "Bad:Tag": invalid reference format: repository name '
                                   "(library/Bad) must be lowercase"),
])
def test_bootstrap_rejects_bad_input_before_calling_the_daemon(daemon: TinyDaemon, args: list[str],
                                                               message: str) -> None:
    proc = berth(daemon, "image", "bootstrap", *args)
    assert (proc.returncode, proc.stderr) == (1, message + "\n")
    assert not any("bootstrap" in s.path for s in daemon.seen)


def test_bootstrap_on_a_daemon_without_it_reports_the_404(daemon: TinyDaemon) -> None:
    proc = berth(daemon, "image", "bootstrap", "busybox")
    assert proc.returncode == 1
    assert proc.stderr == "Error response from daemon: page not found: /v1.41/berth/images/bootstrap?base=busybox" \
                          "&tag=busybox%3Alatest\n"


def test_an_error_inside_a_load_stream_fails_after_printing_what_came_before(daemon: TinyDaemon,
                                                                            tmp_path: Path) -> None:
    daemon.route("POST", "/v1.41/images/load", Reply(200, lines(
        {"stream": "Loaded image: a:1\n"},
        {"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"},
    ), {"Content-Type": "application/json"}))
    tar = tmp_path / "x.tar"
    tar.write_bytes(b"\0" * 2048)
    proc = berth(daemon, "load", "-i", str(tar))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "Loaded image: a:1\n", "unexpected EOF\n")
    sent = [s for s in daemon.seen if s.path.startswith("/v1.41/images/load")][-1]
    assert sent.body == b"\0" * 2048 and sent.headers.get("Transfer-Encoding") == "chunked"
    assert query_of(daemon, "/v1.41/images/load") == {"quiet": ["1"]}  # stdout is not a terminal


def test_import_sends_changes_message_and_reference_and_prints_the_id(daemon: TinyDaemon) -> None:
    daemon.route("POST", "/v1.41/images/create", Reply(200, lines({"status": "sha256:" + "e" * 64})))
    proc = berth(daemon, "import", "-c", "ENV A=1", "--change", "CMD [\"sh\"]", "-m", "hello", "-", "x/y:2",
                 input=b"tar bytes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"sha256:{'e' * 64}\n"
    assert query_of(daemon, "/v1.41/images/create") == {
        "fromSrc": ["-"], "repo": ["x/y:2"], "message": ["hello"], "changes": ["ENV A=1", 'CMD ["sh"]']}
    assert [s for s in daemon.seen if s.path.startswith("/v1.41/images/create")][-1].body == b"tar bytes"
