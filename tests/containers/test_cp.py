"""docker cp through the archive API: Docker's path rules, the X-Docker-Container-Path-Stat header, tar names,
owners and modes, running and stopped containers, and every way a path could lead out of the container's root
(symlinks absolute and relative, `..` in tar entries), which must resolve inside it."""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from berth.api.containers_extra import go_file_mode
from berth.engine.archive import absolute, go_base, resolve_in_root
from berth.errors import Conflict, UnsafePath
from berth.snapshots.apply import CopyOptions, extract_into
from tests.berthd import PrivateBerthd
from tests.containers.extra_daemon import b, client, run_d  # noqa: F401
from tests.peers import Daemon, seeded_daemon  # noqa: F401
from tests.peers import docker as docker_cli

SETUP = ("mkdir -p /d/sub && echo hi > /d/sub/f && chmod 750 /d/sub && ln -s /d /dl && "
         "ln -s /../../../../etc/berth-cp-secret /etc/evil && echo container > /etc/berth-cp-secret && "
         "ln -s ../../../../../tmp /up && touch -d '2020-01-02 03:04:05' /d/sub/f")


def _tar(entries: list[tuple[str, bytes | None, int, int, int]]) -> bytes:
    """(name, data or None for a directory, mode, uid, gid)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1_600_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _members(data: bytes) -> list[tuple[str, str]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(m.name, "dir" if m.isdir() else "sym" if m.issym() else "file") for m in tf.getmembers()]


def _get(api: docker.APIClient, container: str, path: str) -> tuple[bytes, dict[str, object]]:
    chunks, st = api.get_archive(container, path)
    return b"".join(chunks), st


# -- pure helpers ----------------------------------------------------------------------------------------


def test_paths_are_cleaned_the_way_docker_cleans_them() -> None:
    assert absolute("etc/passwd") == "/etc/passwd"
    assert absolute("/etc/") == "/etc/" and absolute("/etc/.") == "/etc/."
    assert absolute("/../../etc") == "/etc" and absolute("//a//b/../c") == "/a/c"
    assert absolute("/") == "/" and absolute(".") == "/."
    assert (go_base("/etc/"), go_base("/"), go_base("/etc/."), go_base("/a/b")) == ("etc", "/", ".", "b")


def test_go_file_mode_bits() -> None:
    assert go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o4755 & 0o777) == (1 << 23) | 0o755
    assert go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "abs").symlink_to("/../../../etc")
    (root / "etc" / "rel").symlink_to("../../../../..")
    (root / "loop").symlink_to("/loop")
    (root / "chain").symlink_to("etc/abs/x")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert resolve_in_root(fd, "/etc/abs/passwd") == "/etc/passwd"
        assert resolve_in_root(fd, "/etc/rel/tmp") == "/tmp"
        assert resolve_in_root(fd, "/chain") == "/etc/x"
        assert resolve_in_root(fd, "/missing/../etc") == "/etc"
        with pytest.raises(Exception, match="too many symlinks"):
            resolve_in_root(fd, "/loop/x")
    finally:
        os.close(fd)


@pytest.mark.root
def test_extract_into_an_existing_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dst" / "keep").mkdir(parents=True)
    (root / "dst" / "old").write_text("old")
    (root / "link").symlink_to("/../../dst")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        n = extract_into(io.BytesIO(_tar([(".wh.plain", b"w", 0o644, 5, 6), ("old", b"new", 0o600, 7, 8),
                                          ("sub/", None, 0o700, 0, 0), ("sub/f", b"f", 0o644, 0, 0)])),
                         fd, ("link",))
        assert n == 4
        dst = root / "dst"
        assert (dst / ".wh.plain").read_bytes() == b"w"               # no whiteouts in a copy
        assert (dst / "old").read_text() == "new" and (dst / "keep").is_dir()
        assert ((dst / "old").stat().st_uid, (dst / "old").stat().st_gid) == (7, 8)
        assert stat.S_IMODE((dst / "sub").stat().st_mode) == 0o700
        extract_into(io.BytesIO(_tar([("owned", b"x", 0o644, 7, 8)])), fd, ("dst",), CopyOptions(owner=(3, 4)))
        assert ((dst / "owned").stat().st_uid, (dst / "owned").stat().st_gid) == (3, 4)
        strict = CopyOptions(no_overwrite_dir_non_dir=True)
        with pytest.raises(Conflict, match='cannot overwrite directory "/dst/keep" with non-directory "/dst"'):
            extract_into(io.BytesIO(_tar([("keep", b"x", 0o644, 0, 0)])), fd, ("dst",), strict)
        with pytest.raises(Conflict, match='cannot overwrite non-directory "/dst/old" with directory "/dst"'):
            extract_into(io.BytesIO(_tar([("old/", None, 0o755, 0, 0)])), fd, ("dst",), strict)
        extract_into(io.BytesIO(_tar([("keep", b"x", 0o644, 0, 0)])), fd, ("dst",))   # replaced when allowed
        assert (dst / "keep").read_bytes() == b"x"
        with pytest.raises(UnsafePath):
            extract_into(io.BytesIO(_tar([("../../out", b"x", 0o644, 0, 0)])), fd, ("dst",))
        assert not (tmp_path / "out").exists()
    finally:
        os.close(fd)


# -- through berthd -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(b: PrivateBerthd) -> Iterator[str]:  # noqa: F811
    run_d(b, "cpweb", "busybox", "sh", "-c", SETUP + " && sleep 1000")
    for _ in range(100):
        if b.docker("exec", "cpweb", "test", "-e", "/up", check=False).returncode == 0:
            break
    yield "cpweb"
    b.docker("rm", "-f", "cpweb", check=False)


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A host file whose path the container's symlinks aim at: nothing may read or replace it."""
    path = Path("/etc/berth-cp-secret")
    if path.exists():
        pytest.skip(f"{path} exists on this host")
    path.write_text("HOST\n")
    yield path
    path.unlink()


@pytest.mark.root
def test_get_archive_names_and_the_path_stat_header(b: PrivateBerthd, web: str) -> None:  # noqa: F811
    api = client(b)
    data, st = _get(api, web, "/d")
    assert _members(data) == [("d", "dir"), ("d/sub", "dir"), ("d/sub/f", "file")]
    assert st["name"] == "d" and st["mode"] == (1 << 31) | 0o755 and st["linkTarget"] == ""
    data, st = _get(api, web, "/d/.")
    assert st["name"] == "." and _members(data)[:2] == [(".", "dir"), ("./sub", "dir")]
    data, st = _get(api, web, "/d/sub/f")
    assert _members(data) == [("f", "file")] and st["size"] == 3 and st["mode"] == 0o644
    assert st["mtime"] == "2020-01-02T03:04:05Z"
    data, st = _get(api, web, "/dl")
    assert _members(data) == [("dl", "sym")] and st["linkTarget"] == "/d" and st["mode"] == (1 << 27) | 0o777
    data, st = _get(api, web, "/dl/")                     # a trailing slash follows the link
    assert _members(data)[0] == ("dl", "dir") and st["linkTarget"] == ""
    with tarfile.open(fileobj=io.BytesIO(_get(api, web, "/d/sub")[0])) as tf:
        sub = tf.getmember("sub")
        assert (sub.mode, tf.extractfile("sub/f").read()) == (0o750, b"hi\n")  # type: ignore[union-attr]


@pytest.mark.root
def test_docker_cp_out_and_in_with_the_cli(b: PrivateBerthd, web: str, tmp_path: Path) -> None:  # noqa: F811
    b.docker("cp", f"{web}:/d", str(tmp_path / "d"))
    assert (tmp_path / "d" / "sub" / "f").read_text() == "hi\n"
    assert stat.S_IMODE((tmp_path / "d" / "sub").stat().st_mode) == 0o750
    src = tmp_path / "up"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "g").write_text("uploaded\n")
    os.chmod(src / "inner" / "g", 0o600)
    os.chown(src / "inner" / "g", 1234, 4321)
    b.docker("cp", str(src), f"{web}:/tmp/up")
    out = b.docker("exec", web, "stat", "-c", "%a %u %g %s", "/tmp/up/inner/g").stdout
    assert out == b"600 1234 4321 9\n"          # without -a: the tar's owners, as dockerd keeps them
    b.docker("cp", str(src / "inner" / "g"), f"{web}:/tmp/renamed")
    assert b.docker("exec", web, "cat", "/tmp/renamed").stdout == b"uploaded\n"
    # tar streams both ways: `docker cp - c:/dir` and `docker cp c:/path -`
    b.docker("cp", "-", f"{web}:/tmp", input=_tar([("streamed/", None, 0o700, 0, 0),
                                                    ("streamed/x", b"xx", 0o640, 7, 8)]))
    assert b.docker("exec", web, "stat", "-c", "%a %u %g", "/tmp/streamed", "/tmp/streamed/x").stdout == \
        b"700 0 0\n640 7 8\n"
    assert _members(b.docker("cp", f"{web}:/tmp/streamed", "-").stdout) == [("streamed", "dir"),
                                                                           ("streamed/x", "file")]


@pytest.mark.root
def test_symlinks_never_lead_out_of_the_container(b: PrivateBerthd, web: str, host_secret: Path,  # noqa: F811
                                                  tmp_path: Path) -> None:
    # reading through /etc/evil -> /../../../../etc/berth-cp-secret gets the container's file
    b.docker("cp", "-L", f"{web}:/etc/evil", str(tmp_path / "got"))
    assert (tmp_path / "got").read_text() == "container\n"
    _, st = _get(client(b), web, "/etc/evil")
    assert st["linkTarget"] == "/etc/berth-cp-secret"
    # writing through it replaces the container's file, never the host's
    (tmp_path / "new").write_text("written\n")
    b.docker("cp", str(tmp_path / "new"), f"{web}:/etc/evil")
    assert host_secret.read_text() == "HOST\n"
    # a destination through /up -> ../../../../../tmp, and a tar entry through it
    marker = f"berth-cp-{secrets.token_hex(4)}"
    api = client(b)
    assert api.put_archive(web, "/up", _tar([(marker, b"in", 0o644, 0, 0)]))
    assert api.put_archive(web, "/", _tar([(f"up/{marker}-2", b"in", 0o644, 0, 0),
                                           (f"etc/evil-dir/../../up/{marker}-3", b"in", 0o644, 0, 0)]))
    assert not any(Path("/tmp", f"{marker}{s}").exists() for s in ("", "-2", "-3"))
    listed = b.docker("exec", web, "ls", "/tmp").stdout.decode().split()
    assert {marker, f"{marker}-2", f"{marker}-3"} <= set(listed)


@pytest.mark.root
def test_bad_paths_and_bad_archives(b: PrivateBerthd, web: str) -> None:  # noqa: F811
    api = client(b)
    with pytest.raises(docker.errors.NotFound, match="Could not find the file /nope in container cpweb"):
        api.get_archive(web, "/nope")
    status, body = b.api("HEAD", f"/containers/{web}/archive?path=/nope")
    assert (status, body) == (404, b"")
    status, body = b.api("GET", f"/containers/{web}/archive")
    assert status == 400
    status, body = b.api("GET", "/containers/nosuch/archive?path=/")
    assert status == 404 and b"No such container: nosuch" in body
    with pytest.raises(docker.errors.NotFound, match="Could not find the file /nodir"):
        api.put_archive(web, "/nodir", _tar([("x", b"x", 0o644, 0, 0)]))
    with pytest.raises(docker.errors.APIError, match="extraction point is not a directory"):
        api.put_archive(web, "/d/sub/f", _tar([("x", b"x", 0o644, 0, 0)]))
    with pytest.raises(docker.errors.APIError, match="escapes"):
        api.put_archive(web, "/d", _tar([("../../escape", b"x", 0o644, 0, 0)]))
    assert b.docker("exec", web, "test", "-e", "/escape", check=False).returncode != 0
    status, body = b.api("PUT", f"/containers/{web}/archive?path=/d&noOverwriteDirNonDir=1",
                         _tar([("sub", b"x", 0o644, 0, 0)]))
    assert status == 409 and b'cannot overwrite directory \\"/d/sub\\" with non-directory \\"/d\\"' in body
    status, body = b.api("PUT", f"/containers/{web}/archive?path=/d", b"this is not a tar archive" * 40)
    assert status == 400
    proc = b.docker("cp", f"{web}:/nope", "/tmp/x", check=False)
    assert proc.returncode == 1 and b"Could not find the file /nope in container cpweb" in proc.stderr


@pytest.mark.root
def test_cp_with_a_stopped_container_and_the_archive_mode(b: PrivateBerthd, tmp_path: Path) -> None:  # noqa: F811
    b.docker("create", "--name", "cpcold", "--user", "1000:1000", "busybox", "cat", "/copied/file")
    try:
        (tmp_path / "copied").mkdir()
        (tmp_path / "copied" / "file").write_text("before start\n")
        b.docker("cp", "-a", str(tmp_path / "copied"), "cpcold:/")
        assert b.docker("start", "-a", "cpcold").stdout == b"before start\n"
        b.docker("cp", "cpcold:/copied/file", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "before start\n"
        data, st = _get(client(b), "cpcold", "/copied")
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            assert [(m.name, m.uid, m.gid) for m in tf.getmembers()] == [("copied", 1000, 1000),
                                                                         ("copied/file", 1000, 1000)]
    finally:
        b.docker("rm", "-f", "cpcold")


@pytest.mark.root
def test_a_read_only_rootfs_refuses_copies_in(b: PrivateBerthd, tmp_path: Path) -> None:  # noqa: F811
    run_d(b, "cpro", "--read-only", "busybox", "sleep", "1000")
    try:
        (tmp_path / "f").write_text("x")
        proc = b.docker("cp", str(tmp_path / "f"), "cpro:/tmp/", check=False)
        assert proc.returncode == 1 and b"container rootfs is marked read-only" in proc.stderr
        b.docker("cp", "cpro:/bin/busybox", str(tmp_path / "bb"))        # reading is fine
        assert (tmp_path / "bb").stat().st_size > 100_000
    finally:
        b.docker("rm", "-f", "cpro")


@pytest.mark.root
@pytest.mark.interop
@pytest.mark.slow
def test_stat_headers_and_tar_names_match_dockerd(b: PrivateBerthd, seeded_daemon: Daemon) -> None:  # noqa: F811
    peer = docker.APIClient(base_url=seeded_daemon.host, version="1.41", timeout=60)
    ours = client(b)
    name = f"cpcmp{secrets.token_hex(3)}"
    docker_cli(seeded_daemon.host, "run", "-d", "--name", name, seeded_daemon.images.busybox, "sh", "-c",
               SETUP + " && sleep 1000")
    run_d(b, name, "busybox", "sh", "-c", SETUP + " && sleep 1000")
    try:
        for api in (peer, ours):
            for _ in range(100):
                try:
                    api.get_archive(name, "/up")
                    break
                except docker.errors.NotFound:
                    continue
        for path in ("/d", "/d/", "/d/.", "/dl", "/dl/", "/d/sub/f", "/d/sub", "/etc/evil", "/up"):
            (theirs_data, theirs), (our_data, mine) = _get(peer, name, path), _get(ours, name, path)
            assert {k: v for k, v in mine.items() if k != "mtime"} == \
                {k: v for k, v in theirs.items() if k != "mtime"}, path
            assert _members(our_data) == _members(theirs_data), path
            if path == "/d/sub/f":
                assert mine["mtime"] == theirs["mtime"]
        # the whole root: entries named "/bin", "/d/sub"... as dockerd names them
        (theirs_data, theirs), (our_data, mine) = _get(peer, name, "/"), _get(ours, name, "/")
        assert mine["name"] == theirs["name"] == "/"
        ours_d = [m for m in _members(our_data) if m[0] in ("/d", "/dl") or m[0].startswith("/d/")]
        assert ours_d == [m for m in _members(theirs_data) if m[0] in ("/d", "/dl") or m[0].startswith("/d/")] == \
            [("/d", "dir"), ("/d/sub", "dir"), ("/d/sub/f", "file"), ("/dl", "sym")]
        for api in (peer, ours):
            with pytest.raises(docker.errors.NotFound) as err:
                api.get_archive(name, "/nope")
            assert json.loads(err.value.response.text)["message"] == f"Could not find the file /nope in container {name}"
    finally:
        docker_cli(seeded_daemon.host, "rm", "-f", name, check=False)
        b.docker("rm", "-f", name, check=False)


@pytest.mark.root
def test_cp_reaches_volumes_and_bind_mounts(b: PrivateBerthd, tmp_path: Path, host_secret: Path) -> None:  # noqa: F811
    bind = tmp_path / "bind"
    bind.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    run_d(b, "cpvol", "-v", "cpvolume:/data", "-v", f"{bind}:/bound", "-v", f"{ro}:/frozen:ro", "busybox", "sh",
          "-c", "echo vol > /data/v && ln -s /../../../../etc /data/esc && sleep 1000")
    try:
        for _ in range(100):
            if b.docker("exec", "cpvol", "test", "-L", "/data/esc", check=False).returncode == 0:
                break
        (tmp_path / "f").write_text("to the volume\n")
        b.docker("cp", str(tmp_path / "f"), "cpvol:/data/f")
        assert b.docker("exec", "cpvol", "cat", "/data/f").stdout == b"to the volume\n"
        b.docker("cp", str(tmp_path / "f"), "cpvol:/bound/")
        assert (bind / "f").read_text() == "to the volume\n"
        b.docker("cp", "cpvol:/data/v", str(tmp_path / "v"))
        assert (tmp_path / "v").read_text() == "vol\n"
        data, st = _get(client(b), "cpvol", "/data")
        assert st["name"] == "data" and ("data/v", "file") in _members(data)
        # a symlink in the volume stays inside it: no host /etc through /data/esc
        with pytest.raises(docker.errors.NotFound):
            client(b).get_archive("cpvol", "/data/esc/berth-cp-secret")
        with pytest.raises(docker.errors.NotFound):      # /data/esc leads to the volume's own (missing) /etc
            client(b).put_archive("cpvol", "/data/esc", _tar([("berth-cp-secret", b"no", 0o644, 0, 0)]))
        with pytest.raises(docker.errors.APIError, match="No such file or directory"):
            client(b).put_archive("cpvol", "/data", _tar([("esc/berth-cp-secret", b"no", 0o644, 0, 0)]))
        assert host_secret.read_text() == "HOST\n"
        proc = b.docker("cp", str(tmp_path / "f"), "cpvol:/frozen/", check=False)
        assert proc.returncode == 1 and b"mounted volume is marked read-only" in proc.stderr
        assert list(ro.iterdir()) == []
    finally:
        b.docker("rm", "-f", "-v", "cpvol")
        b.docker("volume", "rm", "cpvolume", check=False)


@pytest.mark.root
def test_cp_of_a_file_bind_mount(b: PrivateBerthd, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "conf").write_text("bound file\n")
    run_d(b, "cpfile", "-v", f"{tmp_path / 'conf'}:/etc/app.conf", "busybox", "sleep", "1000")
    try:
        data, st = _get(client(b), "cpfile", "/etc/app.conf")
        assert _members(data) == [("app.conf", "file")] and st["size"] == 11
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            assert tf.extractfile("app.conf").read() == b"bound file\n"  # type: ignore[union-attr]
        with pytest.raises(docker.errors.APIError, match="extraction point is not a directory"):
            client(b).put_archive("cpfile", "/etc/app.conf", _tar([("x", b"x", 0o644, 0, 0)]))
        with pytest.raises(docker.errors.NotFound, match="Could not find the file /etc/app.conf/x"):
            client(b).get_archive("cpfile", "/etc/app.conf/x")
    finally:
        b.docker("rm", "-f", "cpfile")
