"""Volumes through berthd, driven by the real docker CLI and docker-py: named, anonymous (from `-v /path` and the
image's VOLUME), bind and tmpfs mounts, copy-up, --volumes-from, rm -v, propagation, the volume commands, and
the bad inputs with dockerd's errors and exit codes. After each test no container, volume or mount of it remains.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import _mounts_under

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def daemon() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as d:
        status, body = d.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield d


@pytest.fixture
def b(daemon: PrivateBerthd, tmp_path: Path) -> Iterator[PrivateBerthd]:
    """The module's daemon, emptied of containers and volumes after each test, with no mount left behind."""
    yield daemon
    for cid in daemon.docker("ps", "-aq").stdout.decode().split():
        daemon.docker("rm", "-fv", cid, check=False)
    names = daemon.docker("volume", "ls", "-q").stdout.decode().split()
    if names:
        daemon.docker("volume", "rm", *names)
    assert _mounts_under(str(daemon.root / "volumes")) == []
    assert _mounts_under(str(daemon.root / "containers")) == []
    assert _mounts_under(str(tmp_path)) == []


def run(b: PrivateBerthd, *args: str) -> subprocess.CompletedProcess[bytes]:
    return b.docker("run", *args, check=False)


def out(b: PrivateBerthd, *args: str) -> str:
    proc = run(b, "--rm", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def volumes(b: PrivateBerthd) -> set[str]:
    return set(b.docker("volume", "ls", "-q").stdout.decode().split())


def inspect(b: PrivateBerthd, ref: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(b.docker("inspect", ref).stdout)[0]
    return value


def test_volume_data_survives_rm_and_is_seen_by_the_next_container(b: PrivateBerthd) -> None:
    run(b, "--name", "writer", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f; mkdir /data/d")
    b.docker("rm", "-v", "writer")                  # -v never removes a named volume
    assert "keep" in volumes(b)
    assert out(b, "-v", "keep:/other", "busybox", "cat", "/other/f") == "kept\n"
    path = Path(json.loads(b.docker("volume", "inspect", "keep").stdout)[0]["Mountpoint"])
    assert (path / "f").read_text() == "kept\n" and (path / "d").is_dir()


def test_read_only_mounts_are_enforced(b: PrivateBerthd, tmp_path: Path) -> None:
    (tmp_path / "h").write_text("host\n")
    for spec in (["-v", "ro1:/d:ro"], ["-v", f"{tmp_path}:/d:ro"], ["--mount", f"type=bind,src={tmp_path},dst=/d,ro"],
                 ["--mount", "type=volume,src=ro1,dst=/d,readonly"], ["--mount", "type=tmpfs,dst=/d,readonly"]):
        proc = run(b, "--rm", *spec, "busybox", "sh", "-c", "touch /d/new")
        assert proc.returncode == 1 and b"Read-only file system" in proc.stderr, spec
    assert not (tmp_path / "new").exists()
    assert out(b, "-v", f"{tmp_path}:/d", "busybox", "sh", "-c", "cat /d/h; echo w > /d/w") == "host\n"
    assert (tmp_path / "w").read_text() == "w\n"


def test_rm_v_removes_anonymous_volumes_and_never_named_ones(b: PrivateBerthd) -> None:
    b.docker("create", "--name", "c1", "-v", "/anon", "--mount", "type=volume,dst=/anon2", "-v", "named:/n",
             "busybox", "true")
    mounts = inspect(b, "c1")["Mounts"]
    assert isinstance(mounts, list)
    anonymous = {m["Name"] for m in mounts if m["Destination"] in ("/anon", "/anon2")}
    assert len(anonymous) == 2 and all(len(n) == 64 for n in anonymous)
    labels = json.loads(b.docker("volume", "inspect", *anonymous).stdout)
    assert all(v["Labels"] == {"com.docker.volume.anonymous": ""} for v in labels)
    assert volumes(b) == anonymous | {"named"}
    b.docker("rm", "-v", "c1")
    assert volumes(b) == {"named"}
    # without -v they stay; --rm removes them (as dockerd does for AutoRemove)
    b.docker("create", "--name", "c2", "-v", "/anon", "busybox", "true")
    b.docker("rm", "c2")
    assert len(volumes(b)) == 2
    before = volumes(b)
    assert run(b, "--rm", "-v", "/x", "busybox", "true").returncode == 0
    assert volumes(b) == before


def test_copy_up_fills_a_fresh_named_volume_from_the_image(b: PrivateBerthd) -> None:
    assert out(b, "-v", "etc:/etc", "busybox", "cat", "/etc/passwd").startswith("root:x:0:0:")
    mountpoint = Path(json.loads(b.docker("volume", "inspect", "etc").stdout)[0]["Mountpoint"])
    assert (mountpoint / "passwd").read_text().startswith("root:x:0:0:")
    assert out(b, "-v", "bin:/bin", "busybox", "sh", "-c", "echo works") == "works\n"
    bindir = Path(json.loads(b.docker("volume", "inspect", "bin").stdout)[0]["Mountpoint"])
    image_sh = os.lstat(bindir / "sh")
    assert os.lstat(bindir / "busybox").st_mode & 0o777 == 0o755 and image_sh.st_uid == 0
    # at create, as dockerd: the volume is filled before the container ever starts
    b.docker("create", "--name", "early", "-v", "early:/usr", "busybox", "true")
    early = Path(json.loads(b.docker("volume", "inspect", "early").stdout)[0]["Mountpoint"])
    assert (early / "bin").is_dir() and os.listdir(early / "bin")
    # a volume with content is not refilled; nocopy mounts it empty
    assert out(b, "-v", "etc:/usr", "busybox", "ls", "/usr").split() == sorted(os.listdir(mountpoint))
    assert out(b, "-v", "empty:/etc:nocopy", "busybox", "ls", "-A", "/etc") == ""
    assert out(b, "--mount", "type=volume,src=empty2,dst=/etc,volume-nocopy", "busybox", "ls", "-A", "/etc") == ""


def test_an_image_volume_gets_an_anonymous_volume_filled_from_the_image(b: PrivateBerthd) -> None:
    run(b, "--name", "base", "busybox", "sh", "-c", "mkdir -p /data/sub && echo from-image > /data/sub/f && "
                                                     "chown -R 65534:65534 /data && ln -s sub/f /data/link")
    b.docker("commit", "-c", "VOLUME /data", "base", "withvolume:1")
    try:
        config = json.loads(b.docker("image", "inspect", "withvolume:1").stdout)[0]["Config"]
        assert config["Volumes"] == {"/data": {}}
        assert out(b, "withvolume:1", "sh", "-c", "cat /data/link; stat -c '%u %g' /data /data/sub/f") == \
            "from-image\n65534 65534\n65534 65534\n"
        b.docker("create", "--name", "user", "withvolume:1", "true")
        m = inspect(b, "user")["Mounts"]
        assert isinstance(m, list) and [(x["Type"], x["Destination"], x["Mode"], x["RW"]) for x in m] == \
            [("volume", "/data", "", True)]
        b.docker("rm", "-v", "user")
        # -v NAME:/data replaces the image's anonymous volume
        assert out(b, "-v", "mine:/data", "withvolume:1", "cat", "/data/sub/f") == "from-image\n"
        assert volumes(b) == {"mine"}
    finally:
        b.docker("rm", "-f", "base", check=False)
        b.docker("rmi", "withvolume:1", check=False)


def test_tmpfs_mounts_have_their_size_and_mode(b: PrivateBerthd) -> None:
    script = "grep -E ' /t[0-9] ' /proc/mounts; stat -c '%a' /t2; dd if=/dev/zero of=/t1/f bs=1k count=2000 2>&1 " \
             "| tail -1"
    text = out(b, "--tmpfs", "/t1:size=1m", "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m,tmpfs-mode=1770",
               "busybox", "sh", "-c", script)
    assert "tmpfs /t1 tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k" in text
    assert "tmpfs /t2 tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k,mode=1770" in text
    assert "\n1770\n" in text and "1024+0 records out" in text   # 1 MiB of the 2000 KiB asked
    b.docker("create", "--name", "tmp", "--tmpfs", "/t1:size=1m", "--mount", "type=tmpfs,dst=/t2", "busybox", "true")
    c = inspect(b, "tmp")
    assert c["Mounts"] == [{"Type": "tmpfs", "Source": "", "Destination": "/t2", "Mode": "", "RW": True,
                            "Propagation": ""}]
    host = c["HostConfig"]
    assert isinstance(host, dict) and host["Tmpfs"] == {"/t1": "size=1m"}
    assert host["Mounts"] == [{"Type": "tmpfs", "Target": "/t2"}]


def test_a_tmpfs_volume_is_mounted_while_used_and_its_data_goes_with_the_mount(b: PrivateBerthd) -> None:
    b.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "tv")
    mountpoint = json.loads(b.docker("volume", "inspect", "tv").stdout)[0]["Mountpoint"]
    text = out(b, "-v", "tv:/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts; dd if=/dev/zero of=/t/f bs=1k "
                                                         "count=2000 2>&1 | tail -1")
    assert "tmpfs /t tmpfs rw,relatime,size=1024k" in text and "1024+0 records out" in text
    assert _mounts_under(mountpoint) == []         # unmounted once no container runs with it
    b.docker("run", "-d", "--name", "t1", "-v", "tv:/t", "busybox", "sleep", "30")
    b.docker("run", "-d", "--name", "t2", "-v", "tv:/t", "busybox", "sleep", "30")
    assert _mounts_under(mountpoint) == [mountpoint]
    b.docker("rm", "-f", "t1")
    assert _mounts_under(mountpoint) == [mountpoint]   # t2 still runs
    b.docker("rm", "-f", "t2")
    assert _mounts_under(mountpoint) == []


def test_a_bind_volume_shows_a_host_directory(b: PrivateBerthd, tmp_path: Path) -> None:
    (tmp_path / "hf").write_text("hi\n")
    b.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}", "bv")
    assert out(b, "-v", "bv:/b", "busybox", "cat", "/b/hf") == "hi\n"
    b.docker("volume", "rm", "bv")
    assert (tmp_path / "hf").read_text() == "hi\n"      # removing the volume never touches the host's files
    b.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}/nope", "bv2")
    proc = run(b, "--rm", "-v", "bv2:/b", "busybox", "true")
    assert proc.returncode != 0 and b"failed to mount local volume" in proc.stderr
    assert b.docker("ps", "-aq").stdout == b""


def test_volumes_from_copies_the_mounts_read_only_when_asked(b: PrivateBerthd, tmp_path: Path) -> None:
    b.docker("run", "-d", "--name", "src", "-v", "shared:/data", "-v", "/anon", "-v", f"{tmp_path}:/host",
             "busybox", "sleep", "30")
    assert out(b, "--volumes-from", "src", "busybox", "sh", "-c", "echo hi > /data/f; cat /data/f") == "hi\n"
    proc = run(b, "--rm", "--volumes-from", "src:ro", "busybox", "sh", "-c", "cat /data/f; touch /anon/x")
    assert proc.stdout == b"hi\n" and b"Read-only file system" in proc.stderr
    b.docker("create", "--name", "dst", "--volumes-from", "src:ro", "busybox", "true")
    mounts = inspect(b, "dst")["Mounts"]
    assert isinstance(mounts, list)
    assert sorted((m["Destination"], m["RW"]) for m in mounts) == [("/anon", False), ("/data", False),
                                                                   ("/host", False)]
    host = inspect(b, "dst")["HostConfig"]
    assert isinstance(host, dict) and host["VolumesFrom"] == ["src:ro"]
    b.docker("rm", "-v", "dst")                       # src still uses the anonymous volume: it stays
    assert len(volumes(b)) == 2
    b.docker("create", "--name", "last", "--volumes-from", "src", "busybox", "true")
    b.docker("rm", "-fv", "src")
    assert len(volumes(b)) == 2                       # `last` still uses it
    b.docker("rm", "-v", "last")                      # the last user removed with -v takes it along
    assert volumes(b) == {"shared"}


def test_bind_sources_are_made_for_v_and_refused_for_mount(b: PrivateBerthd, tmp_path: Path) -> None:
    made = tmp_path / "made" / "deep"
    assert run(b, "--rm", "-v", f"{made}:/m", "busybox", "true").returncode == 0
    assert made.is_dir()
    proc = run(b, "--rm", "--mount", f"type=bind,src={tmp_path}/nope,dst=/m", "busybox", "true")
    assert proc.returncode == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/nope'.encode() \
        in proc.stderr
    assert not (tmp_path / "nope").exists() and b.docker("ps", "-aq").stdout == b""


def test_bind_propagation_reaches_the_container(b: PrivateBerthd, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    refused = run(b, "--rm", "--mount", f"type=bind,src={shared},dst=/s,bind-propagation=rshared", "busybox", "true")
    assert refused.returncode != 0 and b"is not a shared mount" in refused.stderr
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        b.docker("run", "-d", "--name", "prop", "--mount", f"type=bind,src={shared},dst=/s,bind-propagation=rslave",
                 "busybox", "sleep", "30")
        (shared / "later").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(shared / "later")], check=True)
        deadline = time.monotonic() + 5
        while b"/s/later" not in b.docker("exec", "prop", "cat", "/proc/mounts").stdout:
            assert time.monotonic() < deadline, "the host's new mount never reached the container"
            time.sleep(0.1)
        m = inspect(b, "prop")["Mounts"]
        assert isinstance(m, list) and m[0]["Propagation"] == "rslave"
        b.docker("rm", "-f", "prop")
    finally:
        for point in sorted(_mounts_under(str(shared)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


def test_inspect_shows_mounts_and_echoes_the_host_config_like_dockerd(b: PrivateBerthd, tmp_path: Path) -> None:
    b.docker("create", "--name", "mnt", "-v", "v2:/data", "-v", "/anon", "-v", f"{tmp_path}:/h:ro",
             "--mount", f"type=bind,src={tmp_path},dst=/h2", "--mount", "type=volume,src=v3,dst=/v3,volume-nocopy",
             "busybox", "true")
    c = inspect(b, "mnt")
    mounts = {m["Destination"]: m for m in c["Mounts"]}  # type: ignore[attr-defined]
    root = str(b.root / "volumes")
    assert mounts["/data"] == {"Type": "volume", "Name": "v2", "Source": f"{root}/v2/_data", "Destination": "/data",
                               "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert mounts["/h"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/h", "Mode": "ro", "RW": False,
                            "Propagation": "rprivate"}
    assert mounts["/h2"]["Mode"] == "" and mounts["/v3"]["Mode"] == "z" and mounts["/anon"]["Mode"] == ""
    host = c["HostConfig"]
    assert isinstance(host, dict)
    assert sorted(host["Binds"]) == sorted(["v2:/data", f"{tmp_path}:/h:ro"])   # the CLI sends them unordered
    assert host["Mounts"] == [{"Type": "bind", "Source": str(tmp_path), "Target": "/h2"},
                              {"Type": "volume", "Source": "v3", "Target": "/v3",
                               "VolumeOptions": {"NoCopy": True, "DriverConfig": {}}}]
    assert c["Config"]["Volumes"] == {"/anon": {}}  # type: ignore[index]
    status, body = b.api("GET", "/containers/json?all=1")
    assert status == 200
    listed = json.loads(body)[0]["Mounts"]
    assert sorted(listed, key=lambda m: m["Destination"]) == [mounts[d] for d in sorted(mounts)]
    for wanted in ("v2", "/v3", "/h"):
        assert b.docker("ps", "-aq", "--filter", f"volume={wanted}").stdout.decode().strip() == c["Id"][:12]
    assert b.docker("ps", "-aq", "--filter", "volume=other").stdout == b""


def test_volume_commands(b: PrivateBerthd) -> None:
    assert b.docker("volume", "create", "--label", "team=a", "la").stdout == b"la\n"
    b.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "lb")
    anon = b.docker("volume", "create").stdout.decode().strip()
    assert len(anon) == 64
    v = json.loads(b.docker("volume", "inspect", "lb").stdout)[0]
    assert set(v) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (v["Driver"], v["Labels"], v["Options"], v["Scope"]) == \
        ("local", None, {"device": "tmpfs", "o": "size=1m", "type": "tmpfs"}, "local")
    assert time.strptime(v["CreatedAt"], "%Y-%m-%dT%H:%M:%SZ")
    assert b.docker("volume", "ls").stdout.decode().splitlines() == \
        ["DRIVER    VOLUME NAME", f"local     {anon}", "local     la", "local     lb"]
    assert b.docker("volume", "ls", "-q", "-f", "label=team=a").stdout == b"la\n"
    assert b.docker("volume", "ls", "-q", "-f", "label=team=b").stdout == b""
    assert b.docker("volume", "ls", "-q", "-f", "name=l").stdout == b"la\nlb\n"
    assert b.docker("volume", "ls", "-q", "-f", "driver=local", "-f", "name=la").stdout == b"la\n"
    b.docker("create", "--name", "user", "-v", "la:/x", "busybox", "true")
    assert b.docker("volume", "ls", "-q", "-f", "dangling=true").stdout.decode().split() == [anon, "lb"]
    assert b.docker("volume", "ls", "-q", "-f", "dangling=false").stdout == b"la\n"
    bad = b.docker("volume", "ls", "-f", "bogus=1", check=False)
    assert bad.returncode == 1 and b"Invalid filter 'bogus'" in bad.stderr
    # prune (API >= 1.42): unused anonymous volumes only (a nameless `volume create` is not one), unless --all
    b.docker("create", "--name", "gone", "-v", "/anon", "busybox", "true")
    made = (volumes(b) - {anon, "la", "lb"}).pop()
    b.docker("rm", "gone")
    pruned = b.docker("volume", "prune", "-f").stdout.decode()
    assert pruned.startswith("Deleted Volumes:\n" + made + "\n")
    assert volumes(b) == {anon, "la", "lb"}
    assert b.docker("volume", "prune", "-af").stdout.decode().startswith(f"Deleted Volumes:\n{anon}\n\n")
    assert volumes(b) == {"la", "lb"}       # lb has mount options: dockerd never prunes those
    b.docker("volume", "rm", "lb")
    b.docker("rm", "user")
    assert b.docker("volume", "rm", "la").stdout == b"la\n"
    assert b.docker("volume", "rm", "-f", "nosuch").returncode == 0


def test_the_bad_inputs_get_docker_s_errors_and_leave_nothing(b: PrivateBerthd, tmp_path: Path) -> None:
    bad = b.docker("volume", "create", "a/b", check=False)
    assert bad.returncode == 1 and b'"a/b" includes invalid characters for a local volume name' in bad.stderr
    status, body = b.api("POST", "/volumes/create", b'{"Name": "x/y"}')
    assert status == 400 and b"invalid characters" in body
    assert b.docker("volume", "create", "-d", "nfs", "x1", check=False).returncode == 1
    assert b"invalid option" in b.docker("volume", "create", "-o", "bogus=1", "x2", check=False).stderr
    missing = b.docker("volume", "inspect", "nosuch", check=False)
    assert missing.returncode == 1 and b"no such volume" in missing.stderr
    assert b.api("DELETE", "/volumes/nosuch")[0] == 404
    # a volume in use
    b.docker("run", "-d", "--name", "busy", "-v", "inuse:/d", "busybox", "sleep", "30")
    cid = b.docker("inspect", "-f", "{{.Id}}", "busy").stdout.decode().strip()
    for args in (["volume", "rm", "inuse"], ["volume", "rm", "-f", "inuse"]):
        proc = b.docker(*args, check=False)
        assert proc.returncode == 1
        assert f"remove inuse: volume is in use - [{cid}]".encode() in proc.stderr
    assert b.api("DELETE", "/volumes/inuse?force=1")[0] == 409
    b.docker("rm", "-f", "busy")
    # bad mount specs: dockerd's messages; `docker run` exits 125; nothing made
    before = volumes(b)
    for args, message in [
        (["-v", "a:b:c:d"], b"invalid volume specification: 'a:b:c:d'"),
        (["-v", "v:/x:bogus"], b"invalid mode: bogus"),
        (["-v", "a/b:/x"], b'"a/b" includes invalid characters'),
        (["-v", "/anon", "-v", "v1:/x", "-v", "v2:/x"], b"Duplicate mount point: /x"),
        (["-v", "/anon", "--mount", f"type=bind,src={tmp_path}/no,dst=/y"], b"bind source path does not exist"),
        (["-v", "/anon", "-v", "fresh:/f", "--volumes-from", "nosuch"], b"No such container: nosuch"),
        (["--mount", "type=volume,dst=/x,readonly"], b"must not set ReadOnly mode when using anonymous volumes"),
        (["--tmpfs", "rel"], b"mount path must be absolute"),
        (["--mount", "type=volume,src=xy,dst=/x,volume-driver=nfs"], b'plugin "nfs" not found'),
        (["--volume-driver", "nfs", "-v", "xy:/x"], b'plugin "nfs" not found'),
    ]:
        proc = run(b, "--rm", *args, "busybox", "true")
        assert proc.returncode == 125 and message in proc.stderr, (args, proc.stderr)
    assert volumes(b) == before and b.docker("ps", "-aq").stdout == b""


def test_a_mount_target_through_a_symlink_stays_inside_the_rootfs(b: PrivateBerthd, tmp_path: Path) -> None:
    run(b, "--name", "links", "busybox", "sh", "-c", f"ln -s {tmp_path} /escape && ln -s ../../../../.. /up")
    b.docker("commit", "links", "links:1")
    try:
        dangling = run(b, "--rm", "-v", "sv:/escape/inside", "links:1", "true")   # dockerd makes it in the
        assert dangling.returncode != 0 and b"dangling symlink" in dangling.stderr  # rootfs; berth refuses
        assert run(b, "--rm", "-v", "sv2:/up/made", "links:1", "true").returncode == 0
        assert os.listdir(tmp_path) == []             # nothing made on the host
        refused = run(b, "--rm", "-v", "sv3:/escape", "links:1", "true")
        assert refused.returncode != 0 and b"symlink" in refused.stderr
    finally:
        b.docker("rm", "-f", "links", check=False)
        b.docker("rmi", "links:1", check=False)


def test_docker_py_volumes_and_run_with_volumes(b: PrivateBerthd, tmp_path: Path) -> None:
    import docker

    client = docker.DockerClient(base_url=b.host)
    try:
        v = client.volumes.create("pyvol", labels={"k": "v"})
        assert v.name == "pyvol" and v.attrs["Labels"] == {"k": "v"}
        assert client.volumes.get("pyvol").attrs["Mountpoint"].endswith("/pyvol/_data")
        assert [x.name for x in client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
        (tmp_path / "in").write_text("from host\n")
        output = client.containers.run(
            "busybox", ["sh", "-c", "cat /h/in; echo py > /v/f; cat /v/f"], remove=True,
            volumes={"pyvol": {"bind": "/v", "mode": "rw"}, str(tmp_path): {"bind": "/h", "mode": "ro"}})
        assert output == b"from host\npy\n"
        c = client.containers.run("busybox", "true", detach=True, volumes=["/anon"])
        c.wait()
        anon = [m["Name"] for m in c.attrs["Mounts"]]
        assert len(anon) == 1
        c.remove(v=True)
        assert {x.name for x in client.volumes.list()} == {"pyvol"}
        with pytest.raises(docker.errors.APIError) as err:
            client.volumes.create("bad/name")
        assert err.value.status_code == 400
        client.volumes.get("pyvol").remove()
        assert client.volumes.prune()["VolumesDeleted"] is None
    finally:
        client.close()


def test_volume_events_follow_dockerd_s(b: PrivateBerthd) -> None:
    since = f"{time.time():.9f}"   # only this test's events
    b.docker("volume", "create", "ev1")
    assert run(b, "--rm", "-v", "ev1:/d:ro", "busybox", "true").returncode == 0
    assert run(b, "--rm", "-v", "/anon", "busybox", "true").returncode == 0
    b.docker("volume", "rm", "ev1")
    time.sleep(1)
    lines = b.docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "type=volume",
                     "--format", "{{.Action}} {{.Actor.ID}} {{json .Actor.Attributes}}").stdout.decode()
    text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", lines)
    # dockerd also repeats "create ev1" when a container names an existing volume; berth reports creations only
    assert text.splitlines() == [
        'create ev1 {"driver":"local"}',
        'mount ev1 {"container":"<id>","destination":"/d","driver":"local","propagation":"","read/write":"false"}',
        'unmount ev1 {"container":"<id>","driver":"local"}',
        'create <id> {"driver":"local"}',
        'mount <id> {"container":"<id>","destination":"/anon","driver":"local","propagation":"","read/write":"true"}',
        'unmount <id> {"container":"<id>","driver":"local"}',
        'destroy <id> {"driver":"local"}',
        'destroy ev1 {"driver":"local"}',
    ]


def test_volumes_and_their_use_survive_a_daemon_restart(b: PrivateBerthd) -> None:
    b.docker("volume", "create", "--label", "k=v", "durable")
    b.docker("run", "-d", "--name", "holder", "-v", "durable:/d", "-v", "/anon", "busybox", "sh", "-c",
             "echo before > /d/f; sleep 60")
    before = json.loads(b.docker("volume", "inspect", "durable").stdout)
    b.kill()
    b.start()
    assert json.loads(b.docker("volume", "inspect", "durable").stdout) == before
    refused = b.docker("volume", "rm", "durable", check=False)
    assert refused.returncode == 1 and b"volume is in use" in refused.stderr
    assert out(b, "-v", "durable:/x", "busybox", "cat", "/x/f") == "before\n"
    b.docker("rm", "-fv", "holder")
    assert volumes(b) == {"durable"}


@pytest.mark.parametrize("runtime", ["berth", "runc", "crun"])
def test_mounts_nest_parent_first_and_replace_defaults_under_every_runtime(b: PrivateBerthd, tmp_path: Path,
                                                                           runtime: str) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.1.2.3 mine\n")
    script = ("echo in-b > /x/y/f; echo in-a > /x/g; cat /etc/hosts; grep -E ' /dev/shm ' /proc/mounts; "
              "touch /r/f 2>&1; stat -c %a /t")
    text = out(b, "--runtime", runtime, "-v", "outer:/x", "-v", "inner:/x/y", "-v", f"{hosts}:/etc/hosts:ro",
               "--tmpfs", "/dev/shm:size=3m", "-v", "outer:/r:ro", "--mount", "type=tmpfs,dst=/t,tmpfs-mode=700",
               "busybox", "sh", "-c", script)
    assert text.splitlines() == ["10.1.2.3 mine", "tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=3072k 0 0",
                                 "touch: /r/f: Read-only file system", "700"]
    outer = Path(json.loads(b.docker("volume", "inspect", "outer").stdout)[0]["Mountpoint"])
    inner = Path(json.loads(b.docker("volume", "inspect", "inner").stdout)[0]["Mountpoint"])
    assert (inner / "f").read_text() == "in-b\n" and (outer / "g").read_text() == "in-a\n"
    assert (outer / "y").is_dir() and not (outer / "y" / "f").exists()
    assert hosts.read_text() == "10.1.2.3 mine\n"


def test_concurrent_first_uses_of_a_volume_copy_it_up_once(b: PrivateBerthd) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = out(b, "busybox", "sh", "-c", "ls -R /usr | wc -l")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(b, "--rm", "-v", "race:/usr", "busybox", "sh", "-c",
                                              "ls -R /usr | wc -l"), range(4)))
    assert [(r.returncode, r.stdout.decode()) for r in results] == [(0, expected)] * 4, [r.stderr for r in results]


def test_compose_1_29_s_volume_calls(b: PrivateBerthd, tmp_path: Path) -> None:
    """The calls docker-compose 1.29 makes for a named volume and a bind (../shared/reference/engine-api-calls.md
    §3), raw: look the volume up, create it with the project's labels, a container with Binds and Volumes, then
    `down -v`."""
    labels = {"com.docker.compose.project": "cproj", "com.docker.compose.volume": "data",
              "com.docker.compose.version": "1.29.2"}
    assert b.api("GET", "/v1.41/volumes/cproj_data")[0] == 404
    status, body = b.api("POST", "/v1.41/volumes/create",
                         json.dumps({"Name": "cproj_data", "Driver": None, "DriverOpts": None,
                                     "Labels": labels}).encode())
    assert status == 201 and json.loads(body)["Labels"] == labels
    create = {"Image": "busybox", "Cmd": ["sh", "-c", "cat /host/h; echo up > /data/f"],
              "Volumes": {"/host": {}, "/data": {}},
              "HostConfig": {"NetworkMode": "default", "VolumesFrom": [], "Links": [],
                             "Binds": [f"{tmp_path}:/host:ro", "cproj_data:/data:rw"]}}
    (tmp_path / "h").write_text("project dir\n")
    status, body = b.api("POST", "/v1.41/containers/create?name=cproj_web_1", json.dumps(create).encode())
    assert status == 201, body
    cid = json.loads(body)["Id"]
    assert b.api("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    assert b.api("POST", f"/v1.41/containers/{cid}/wait")[0] == 200
    c = inspect(b, cid)
    assert sorted((m["Destination"], m["Type"], m["Mode"], m["RW"]) for m in c["Mounts"]) == \
        [("/data", "volume", "rw", True), ("/host", "bind", "ro", False)]  # type: ignore[attr-defined]
    assert b.docker("logs", cid).stdout == b"project dir\n"
    assert volumes(b) == {"cproj_data"}                    # Volumes entries under a bind make no anonymous volume
    assert b.api("DELETE", f"/v1.41/containers/{cid}?v=True&link=False&force=False")[0] == 204
    assert b.api("DELETE", "/v1.41/volumes/cproj_data")[0] == 204
    assert volumes(b) == set()


def test_a_non_recursive_bind_leaves_the_source_s_submounts_behind(b: PrivateBerthd, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True)
    try:
        (src / "sub" / "on-submount").write_text("x")
        assert out(b, "--mount", f"type=bind,src={src},dst=/s", "busybox", "ls", "/s/sub") == "on-submount\n"
        assert out(b, "--mount", f"type=bind,src={src},dst=/s,bind-recursive=disabled", "busybox",
                   "ls", "/s/sub") == ""
        b.docker("create", "--name", "flat", "--mount", f"type=bind,src={src},dst=/s,bind-recursive=disabled",
                 "busybox", "true")
        host = inspect(b, "flat")["HostConfig"]
        assert isinstance(host, dict) and host["Mounts"][0]["BindOptions"] == {"NonRecursive": True}
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)
