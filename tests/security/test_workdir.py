"""A working directory never leads out of the container (security-cases.md case 19; CVE-2024-21626 class):
through a private berthd and the real docker CLI, `-w` and an image's WORKDIR that do not exist are created
inside the rootfs, and one that goes through a symlink aimed at a host directory (absolute, or climbing with
`..`) resolves inside the rootfs: the host directory is never created in, and the process's cwd is inside. A
dangling link in the way is refused with a clear error (dockerd would create its target inside the rootfs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def test_a_missing_workdir_is_made_inside_the_rootfs(b: PrivateBerthd) -> None:
    out = b.docker("run", "--rm", "-w", "/made/by/berth", "busybox", "sh", "-c", "pwd; ls -ld . | cut -c1-10")
    assert out.stdout == b"/made/by/berth\ndrwxr-xr-x\n"


def test_a_workdir_through_a_symlink_to_the_host_stays_inside(b: PrivateBerthd, tmp_path: Path) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    b.docker("run", "--name", "links", "busybox", "sh", "-c",
             f"ln -s {host} /abs && ln -s ../../../../../../..{host} /up && ln -s /nowhere{host} /dangling && "
             f"mkdir -p {host}")
    try:
        b.docker("commit", "links", "links:1")
        for workdir in ("/abs/new", "/up/new2", "/abs"):
            proc = b.docker("run", "--rm", "-w", workdir, "links:1", "sh", "-c",
                            "pwd -P; touch made-here && ls", check=False)
            assert proc.returncode == 0, proc
            lines = proc.stdout.decode().split()
            assert lines[0].startswith(str(host)) and "made-here" in lines, lines   # the container's own copy
            assert os.listdir(host) == [], f"-w {workdir} reached the host directory"
        # through a dangling link: refused with a clear error (Docker would make it inside), never made on the host
        proc = b.docker("run", "--rm", "-w", "/dangling/x", "links:1", "pwd", "-P", check=False)
        assert (proc.returncode == 125 and b"symlink" in proc.stderr) or \
            proc.stdout.decode().startswith(f"/nowhere{host}"), proc
        assert os.listdir(host) == []
        # the same through the image's WORKDIR
        b.docker("commit", "--change", "WORKDIR /up/from-image", "links", "links:2")
        proc = b.docker("run", "--rm", "links:2", "sh", "-c", "pwd -P; touch x", check=False)
        assert proc.returncode == 0 and proc.stdout.decode().strip() == f"{host}/from-image", proc
        assert os.listdir(host) == []
    finally:
        b.docker("rm", "-f", "links", check=False)
        b.docker("rmi", "links:1", "links:2", check=False)
