"""The private-dockerd peer itself: isolated (own netns, no host bridge touched) and leaving nothing behind."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests import peers
from tests.peers import Daemon, PeerError, PrivateDockerd, _mounts_under, _pids_mentioning, busybox_rootfs_tar

dockerd = peers.dockerd
seeded_daemon = peers.seeded_daemon


def _netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.mark.interop
@pytest.mark.root
@pytest.mark.slow
def test_private_dockerd_runs_isolated_and_leaves_nothing_behind(tmp_path: Path) -> None:
    links_before = _host_links()
    d = PrivateDockerd()
    with d:
        assert d.netns in _netns_list()
        pid = int(d.pidfile.read_text())
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert d.docker("version", "--format", "{{.Server.Os}}").stdout == b"linux\n"
        assert _pids_mentioning(str(d.root))  # dockerd and its containerd
        # no docker0 made (or a link removed) on the host; veths and private berthds' bridges (bb...) of other
        # tests come and go meanwhile
        def stable(links: set[str]) -> set[str]:
            return {n for n in links if not n.startswith(("veth", "bb"))}
        assert stable(_host_links()) == stable(links_before)
    assert not _pids_mentioning(str(d.root))
    assert not _mounts_under(str(d.root))
    assert d.netns not in _netns_list()
    assert not d.root.exists()
    d.stop()  # a second stop is harmless


@pytest.mark.interop
@pytest.mark.root
def test_a_start_that_times_out_cleans_up(tmp_path: Path) -> None:
    d = PrivateDockerd(start_timeout=0.0)
    with pytest.raises(PeerError, match="did not answer|exited"):
        d.start()
    assert not _pids_mentioning(str(d.root))
    assert d.netns not in _netns_list()
    assert not d.root.exists()


def test_busybox_rootfs_is_reproducible_and_complete() -> None:
    first, second = busybox_rootfs_tar(), busybox_rootfs_tar()
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777
    assert "etc/passwd" in members and "usr/bin/env" in members


def test_a_base_dir_too_deep_for_containerds_sockets_is_refused_up_front(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    d = PrivateDockerd(base_dir=deep)
    with pytest.raises(PeerError, match="too deep for containerd"):
        d.start()
    assert not d.root.exists()


@pytest.mark.interop
@pytest.mark.root
def test_the_seeded_daemon_is_the_sessions_dockerd_when_a_module_uses_both(dockerd: PrivateDockerd,
                                                                           seeded_daemon: Daemon) -> None:
    if os.environ.get(peers.DAEMON_ENV):
        pytest.skip("seeded_daemon is the daemon named by $BERTH_TEST_DAEMON_HOST")
    assert seeded_daemon.host == dockerd.host
    out = dockerd.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert {"busybox:latest", "berth-layered:1"} <= set(out)
