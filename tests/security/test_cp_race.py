"""`docker cp` against a container that swaps a directory and a symlink to the host's tree as fast as it can
(CVE-2018-15664: symlink-exchange race in FollowSymlinkInScope; security-cases.md case 20).

Inside a running container a tiny static C program renameat2(RENAME_EXCHANGE)s `/w/path` (a directory holding
the container's own `secret`) with `/w/stash` (a symlink to the absolute host path of a directory of the test's
own holding the host's `secret`). For a few seconds the test reads `/w/path/secret` and writes into `/w/path`
through the archive API, many times: every read must give the container's file or a clean 404, never the host's;
every write must land in the container or fail cleanly; the host directory must stay exactly as it was. The
swap is shown to be effective: both outcomes (found and not found) are seen.
"""

from __future__ import annotations

import http.client
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root, pytest.mark.slow]

SWAPPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    for (;;) {
        if (syscall(SYS_renameat2, AT_FDCWD, "/w/path", AT_FDCWD, "/w/stash", 2 /* RENAME_EXCHANGE */) != 0) {
            perror("renameat2");
            return 1;
        }
    }
}
"""


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def compile_static(src: str, out: Path) -> Path:
    c = out.with_suffix(".c")
    c.write_text(src)
    proc = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(c)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"gcc -static failed (libc6-dev is in scripts/install.sh): {proc.stderr}")
    return out


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read_secret(body: bytes) -> bytes | None:
    with tarfile.open(fileobj=io.BytesIO(body)) as tf:
        member = tf.next()
        if member is None or not member.isfile():
            return None
        f = tf.extractfile(member)
        return f.read() if f is not None else None


def test_cp_never_reads_or_writes_the_host_during_a_symlink_exchange_race(b: PrivateBerthd, tmp_path: Path) -> None:
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "secret").write_bytes(b"HOST-SECRET\n")
    before = sorted(os.listdir(host_dir))
    swapper = compile_static(SWAPPER, tmp_path / "swapper")
    setup = (f"mkdir -p /w/path && echo container > /w/path/secret && ln -s {host_dir} /w/stash && "
             "exec /swapper")
    cid = b.docker("run", "-d", "-v", f"{swapper}:/swapper:ro", "busybox", "sh", "-c",
                   setup).stdout.decode().strip()
    try:
        time.sleep(0.5)
        state = b.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip()
        assert state == b"true", b.docker("logs", cid, check=False).stderr
        seen: dict[str, int] = {}
        deadline = time.monotonic() + 4
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                status, body = b.api("GET", f"/containers/{cid}/archive?path=/w/path/secret")
            except http.client.IncompleteRead as exc:
                # found, then swapped away before its bytes were read: the stream is cut, nothing else sent
                assert b"HOST" not in exc.partial
                seen["read-cut"] = seen.get("read-cut", 0) + 1
                continue
            if status == 200:
                got = _read_secret(body)
                assert got != b"HOST-SECRET\n", "docker cp read the host's file through the swapped symlink"
                key = "read-ok" if got == b"container\n" else "read-other"
                seen[key] = seen.get(key, 0) + 1
            else:
                assert status in (404, 400, 500), (status, body)
                assert b"HOST" not in body
                seen[f"read-{status}"] = seen.get(f"read-{status}", 0) + 1
            status, body = b.api("PUT", f"/containers/{cid}/archive?path=/w/path",
                                 _tar(f"planted-{n}", b"from cp\n"))
            seen[f"write-{status}"] = seen.get(f"write-{status}", 0) + 1
            assert sorted(os.listdir(host_dir)) == before, f"cp wrote into the host directory: {seen}"
        assert (host_dir / "secret").read_bytes() == b"HOST-SECRET\n"
        # the race was real: the path was seen both as the container's directory and as the dangling symlink
        assert seen.get("read-ok", 0) > 0 and seen.get("read-404", 0) > 0, seen
        assert seen.get("write-200", 0) > 0, seen
        b.docker("kill", cid, check=False)
        listed = b.docker("run", "--rm", "--volumes-from", cid, "busybox", "true", check=False)
        assert listed.returncode == 0
    finally:
        b.docker("rm", "-f", cid, check=False)
    assert sorted(os.listdir(host_dir)) == before
