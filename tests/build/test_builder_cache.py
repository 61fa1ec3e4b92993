"""The build cache through berthd and the docker CLI: an unchanged rebuild reuses every step, a changed copied file
rebuilds from its COPY on only, a touched file (mtime only) still hits, build args are part of a RUN's key,
--no-cache and --cache-from, and the cache survives kill -9 and a restart of berthd."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root
CLASSIC = {"DOCKER_BUILDKIT": "0"}
DOCKERFILE = """FROM busybox
ARG FLAVOR=plain
ENV APP=/app
WORKDIR /app
COPY deps.txt ./
RUN cat deps.txt > /installed && echo $FLAVOR >> /installed
COPY src/ ./src/
RUN ls src > /listing
CMD ["cat", "/installed"]
"""


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        yield daemon


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "deps.txt").write_text("dep-a\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('v1')\n")
    return tmp_path


def build(b: PrivateBerthd, ctx: Path, *args: str) -> list[tuple[str, bool]]:
    """(step text, whether it came from the cache) for every step after FROM."""
    proc = b.docker("build", "-t", "cached:1", *args, str(ctx), env=CLASSIC, check=False)
    assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
    out = proc.stdout.decode()
    steps = re.split(r"^Step \d+/\d+ : ", out, flags=re.M)[2:]
    return [(s.splitlines()[0], " ---> Using cache" in s) for s in steps]


def test_an_unchanged_rebuild_reuses_every_step(b: PrivateBerthd, ctx: Path) -> None:
    first = build(b, ctx, "--no-cache")
    assert not any(hit for _, hit in first)
    before = b.docker("image", "inspect", "--format", "{{.Id}}", "cached:1").stdout
    assert all(hit for _, hit in build(b, ctx))
    assert b.docker("image", "inspect", "--format", "{{.Id}}", "cached:1").stdout == before


def test_a_changed_file_rebuilds_from_its_copy_on_only(b: PrivateBerthd, ctx: Path) -> None:
    build(b, ctx)
    (ctx / "src" / "main.py").write_text("print('v2')\n")
    steps = build(b, ctx)
    hits = [hit for _, hit in steps]
    assert hits == [True, True, True, True, True, False, False, False], steps
    os.utime(ctx / "deps.txt", (1_000_000, 1_000_000))     # mtime alone changes nothing
    assert all(hit for _, hit in build(b, ctx))
    (ctx / "deps.txt").write_text("dep-a\ndep-b\n")
    hits = [hit for _, hit in build(b, ctx)]
    assert hits == [True, True, True, False, False, False, False, False]
    assert b.docker("run", "--rm", "cached:1").stdout == b"dep-a\ndep-b\nplain\n"


def test_a_build_arg_is_part_of_the_run_key(b: PrivateBerthd, ctx: Path) -> None:
    build(b, ctx)
    hits = [hit for _, hit in build(b, ctx, "--build-arg", "FLAVOR=spicy")]
    assert hits == [True, True, True, True, False, False, False, False]
    assert b.docker("run", "--rm", "cached:1").stdout == b"dep-a\nspicy\n"


def test_cache_from_limits_hits_to_that_image_s_history(b: PrivateBerthd, ctx: Path) -> None:
    build(b, ctx)
    b.docker("tag", "cached:1", "cache-source:1")
    assert all(hit for _, hit in build(b, ctx, "--cache-from", "cache-source:1"))
    other = ctx / "other"
    other.mkdir()
    (other / "Dockerfile").write_text("FROM busybox\nRUN echo unrelated > /u\n")
    b.docker("build", "-t", "unrelated:1", str(other), env=CLASSIC)
    assert not any(hit for _, hit in build(b, ctx, "--cache-from", "unrelated:1"))


def test_the_cache_survives_a_killed_and_restarted_daemon(b: PrivateBerthd, ctx: Path) -> None:
    build(b, ctx)
    b.kill()
    b.start()
    assert all(hit for _, hit in build(b, ctx))


def test_concurrent_builds_of_one_context_all_succeed_and_agree(b: PrivateBerthd, ctx: Path) -> None:
    import concurrent.futures

    (ctx / "src" / "main.py").write_text("print('concurrent')\n")

    def one(i: int) -> bytes:
        proc = b.docker("build", "--no-cache", "-t", f"concurrent:{i}", str(ctx), env=CLASSIC, check=False)
        assert proc.returncode == 0, proc.stderr
        return b.docker("run", "--rm", f"concurrent:{i}", "cat", "/listing").stdout

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outputs = list(pool.map(one, range(3)))
    assert outputs == [b"main.py\n"] * 3
    assert b.docker("ps", "-aq").stdout == b""
    assert not list((b.root / "snapshots" / "active").glob("*.json"))


def test_what_a_build_killed_with_the_daemon_left_is_removed_before_the_next_build(b: PrivateBerthd,
                                                                                  tmp_path: Path) -> None:
    import subprocess
    import time

    from tests.peers import DOCKER_CLI, _mounts_under
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "Dockerfile").write_text("FROM busybox\nCOPY Dockerfile /d\nRUN echo started && sleep 120\n")
    proc = subprocess.Popen([DOCKER_CLI, "-H", b.host, "build", "--no-cache", str(slow)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **CLASSIC})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == b"started":
            break
    b.kill()
    proc.wait()
    b.start()
    assert b.docker("ps", "-aq").stdout != b""          # the step's container outlived berthd
    build(b, ctx_of(tmp_path))
    deadline = time.monotonic() + 10
    while b.docker("ps", "-aq").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b.docker("ps", "-aq").stdout == b""
    assert not list((b.root / "snapshots" / "active").glob("build-*.json"))
    assert [m for m in _mounts_under(str(b.root)) if "/builder/" in m] == []


def ctx_of(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    return ctx
