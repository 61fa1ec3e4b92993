"""The builder must not carry secrets it was not asked to keep (security-cases.md cases 21 and 22), through a
private berthd and the real docker CLI (DOCKER_BUILDKIT=0, the classic builder berth implements):

* a file the .dockerignore excludes is never sent, so `COPY . /ctx` cannot put it in the image and naming it
  is "not found"; a symlink in the context arrives as a link, its target outside the context never read;
* predefined proxy build args (HTTP_PROXY & co., which carry credentials) reach RUN steps but are absent from
  the image's history and config unless the Dockerfile declares them; a plain build arg never lands in the
  config's Env.
(`--secret` needs BuildKit, which berth does not offer: the CLI refuses it before any request.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root
CLASSIC = {"DOCKER_BUILDKIT": "0"}
CREDS = "proxyuser:s3cr3t-pw"


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


def build(b: PrivateBerthd, ctx: Path, *args: str) -> tuple[int, str]:
    proc = b.docker("build", *args, str(ctx), env=CLASSIC, check=False)
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


def everything_recorded(b: PrivateBerthd, image: str) -> str:
    """The image's config and its full history, as text."""
    inspect = b.docker("image", "inspect", image).stdout.decode()
    history = b.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout.decode()
    return inspect + history


def test_a_dockerignored_file_never_reaches_the_image(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    (ctx / ".dockerignore").write_text("secret.env\nkeys/\n")
    (ctx / "secret.env").write_text("TOKEN=do-not-ship\n")
    (ctx / "keys").mkdir()
    (ctx / "keys" / "id_rsa").write_text("PRIVATE KEY\n")
    (ctx / "app.txt").write_text("app\n")
    outside = tmp_path / "outside-secret"
    outside.write_text("host only\n")
    os.symlink(str(outside), ctx / "link-out")
    code, out = build(b, ctx, "-t", "ignored:1")
    assert code == 0, out
    listing = b.docker("run", "--rm", "ignored:1", "sh", "-c",
                       "ls -A /ctx; readlink /ctx/link-out; cat /ctx/link-out 2>&1; true").stdout.decode()
    names = listing.split("\n")
    assert "app.txt" in names and "secret.env" not in names and "keys" not in names, listing
    assert str(outside) in names and "host only" not in listing, listing
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret.env /\n")
    code, out = build(b, ctx, "-t", "ignored:2")
    assert code != 0 and "secret.env" in out and ("not found" in out or "no such file" in out.lower()), out
    assert b.docker("image", "inspect", "ignored:2", check=False).returncode != 0


def test_proxy_build_args_stay_out_of_history_unless_declared(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    proxy = f"http://{CREDS}@127.0.0.1:9/"
    (ctx / "Dockerfile").write_text('FROM busybox\nARG PLAIN\nRUN test -n "$HTTP_PROXY" && test -n "$https_proxy" '
                                    '&& test "$PLAIN" = visible && echo saw-the-proxy\n')
    code, out = build(b, ctx, "-t", "proxied:1", "--build-arg", f"HTTP_PROXY={proxy}", "--build-arg",
                      f"https_proxy={proxy}", "--build-arg", "PLAIN=visible")
    assert code == 0 and "saw-the-proxy" in out, out        # RUN steps do get them
    recorded = everything_recorded(b, "proxied:1")
    assert CREDS not in recorded, recorded
    assert "PLAIN=visible" in recorded                      # a declared arg is in history, as Docker keeps it
    env = json.loads(b.docker("image", "inspect", "proxied:1").stdout)[0]["Config"]["Env"] or []
    assert not any(e.startswith(("PLAIN=", "HTTP_PROXY=", "https_proxy=")) for e in env), env
    # declaring it makes it an ordinary build arg: kept, as dockerd keeps it
    (ctx / "Dockerfile").write_text('FROM busybox\nARG HTTP_PROXY\nRUN test -n "$HTTP_PROXY"\n')
    code, out = build(b, ctx, "-t", "proxied:2", "--build-arg", f"HTTP_PROXY={proxy}")
    assert code == 0, out
    assert CREDS in everything_recorded(b, "proxied:2")
