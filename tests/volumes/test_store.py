"""The volume store on a temp root: records, names, removal refused while in use, prune, usage, crash leftovers,
options mounted at first use, and copy-up kept inside the container's root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.volumes.copyup import copy_up
from berth.volumes.store import ANONYMOUS_LABEL, VolumeStore
from tests.peers import _mounts_under


class Users:
    """Which containers use which volume, and which of them run: what the engine's records would say."""

    def __init__(self) -> None:
        self.by_volume: dict[str, list[tuple[str, bool]]] = {}

    def __call__(self) -> Mapping[str, Sequence[str]]:
        return {name: [cid for cid, _ in pairs] for name, pairs in self.by_volume.items() if pairs}

    def running(self, container_id: str) -> bool:
        return any(cid == container_id and up for pairs in self.by_volume.values() for cid, up in pairs)


@pytest.fixture
def users() -> Users:
    return Users()


@pytest.fixture
def store(tmp_path: Path, users: Users) -> VolumeStore:
    return VolumeStore(tmp_path / "volumes", users, clock=lambda: "2024-01-02T03:04:05Z")


def test_create_writes_a_record_and_a_data_dir_and_returns_an_existing_volume_unchanged(store: VolumeStore) -> None:
    v, created = store.create("data", labels={"a": "b"})
    assert created and v.mountpoint == store.root / "data" / "_data" and v.mountpoint.is_dir()
    assert (v.name, v.driver, v.created_at, dict(v.labels), dict(v.options)) == \
        ("data", "local", "2024-01-02T03:04:05Z", {"a": "b"}, {})
    again, created = store.create("data", labels={"other": "x"})
    assert not created and again == v
    assert store.get("data") == v and [x.name for x in store.all()] == ["data"]


def test_an_empty_name_gets_64_hex_digits(store: VolumeStore) -> None:
    v, _ = store.create("", labels={ANONYMOUS_LABEL: ""})
    assert len(v.name) == 64 and int(v.name, 16) >= 0 and v.anonymous


@pytest.mark.parametrize("name", ["a/b", "../x", "/abs", "a", ".hidden"])
def test_bad_names_make_nothing(store: VolumeStore, name: str) -> None:
    with pytest.raises(InvalidArgument):
        store.create(name)
    assert os.listdir(store.root) == []


def test_another_driver_is_not_found(store: VolumeStore) -> None:
    with pytest.raises(NotFound, match='plugin "nfs" not found'):
        store.create("v1", driver="nfs")


def test_get_of_a_missing_or_odd_name_is_not_found(store: VolumeStore) -> None:
    for name in ("nope", "", ".tmp-1", "a/b"):
        with pytest.raises(NotFound, match="no such volume"):
            store.get(name)


def test_a_volume_in_use_is_not_removed_even_with_force(store: VolumeStore, users: Users) -> None:
    v, _ = store.create("busy")
    (v.mountpoint / "keep").write_text("x")
    users.by_volume["busy"] = [("c" * 64, False)]
    for force in (False, True):
        with pytest.raises(Conflict, match=f"remove busy: volume is in use - \\[{'c' * 64}\\]"):
            store.remove("busy", force=force)
    assert (v.mountpoint / "keep").read_text() == "x"
    users.by_volume.clear()
    store.remove("busy")
    assert not (store.root / "busy").exists()
    with pytest.raises(NotFound):
        store.remove("busy")
    store.remove("busy", force=True)   # force forgives a missing volume


def test_prune_removes_unused_volumes_that_are_not_kept_and_counts_bytes(store: VolumeStore, users: Users) -> None:
    a, _ = store.create("anon1", labels={ANONYMOUS_LABEL: ""})
    (a.mountpoint / "f").write_bytes(b"x" * 1000)
    os.link(a.mountpoint / "f", a.mountpoint / "hard")
    store.create("named")
    store.create("used", labels={ANONYMOUS_LABEL: ""})
    users.by_volume["used"] = [("c1", True)]
    removed, reclaimed = store.prune(keep=lambda v: not v.anonymous)
    assert (removed, reclaimed) == (["anon1"], 1000)
    assert sorted(v.name for v in store.all()) == ["named", "used"]
    usage = {v.name: (size, refs) for v, size, refs in store.usage()}
    assert usage == {"named": (0, 0), "used": (0, 1)}


def test_a_crash_s_leftovers_are_cleaned_at_start(tmp_path: Path, users: Users) -> None:
    root = tmp_path / "volumes"
    (root / ".tmp-dead" / "_data").mkdir(parents=True)
    (root / ".trash-dead" / "_data").mkdir(parents=True)
    (root / "halfway").mkdir()    # no record: not a volume
    store = VolumeStore(root, users)
    assert sorted(os.listdir(root)) == ["halfway"] and store.all() == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting and chown need root")


@pytest.mark.root
@needs_root
def test_a_tmpfs_volume_is_mounted_at_first_use_and_unmounted_when_unused(store: VolumeStore, users: Users) -> None:
    v, _ = store.create("t1", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=700"})
    try:
        store.mount(v)
        store.mount(v)   # once
        assert _mounts_under(str(v.mountpoint)) == [str(v.mountpoint)]
        assert os.statvfs(v.mountpoint).f_blocks * os.statvfs(v.mountpoint).f_frsize == 1 << 20
        users.by_volume["t1"] = [("a", True), ("b", True)]
        store.release(v, "a")      # b still runs
        assert _mounts_under(str(v.mountpoint))
        users.by_volume["t1"] = [("a", False), ("b", False)]
        store.release(v, "b")
        assert _mounts_under(str(v.mountpoint)) == []
        store.mount(v)             # as a start that crashed after mounting would leave it
        assert store.unmount_unused() == ["volume t1 unmounted: no running container uses it"]
        assert _mounts_under(str(v.mountpoint)) == []
        store.mount(v)
        users.by_volume["t1"] = [("a", True)]
        assert store.unmount_unused() == [] and _mounts_under(str(v.mountpoint))
        users.by_volume.clear()
        store.remove("t1")         # unmounts before it deletes
        assert _mounts_under(str(store.root)) == []
    finally:
        for point in reversed(_mounts_under(str(store.root))):
            subprocess.run(["umount", "-l", point], check=False)


@pytest.mark.root
@needs_root
def test_a_bind_volume_shows_its_host_dir_and_removal_never_empties_it(store: VolumeStore, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("keep me")
    v, _ = store.create("b1", options={"type": "none", "o": "bind", "device": str(host)})
    try:
        store.mount(v)
        assert (v.mountpoint / "precious").read_text() == "keep me"
        store.remove("b1")
        assert (host / "precious").read_text() == "keep me"
        assert _mounts_under(str(store.root)) == []
    finally:
        for point in reversed(_mounts_under(str(store.root))):
            subprocess.run(["umount", "-l", point], check=False)


@pytest.mark.root
@needs_root
def test_a_missing_bind_device_fails_like_dockerd(store: VolumeStore, tmp_path: Path) -> None:
    v, _ = store.create("b2", options={"type": "none", "o": "bind", "device": str(tmp_path / "nope")})
    with pytest.raises(Exception, match="failed to mount local volume: mount .*nope.*flags: 0x1000: no such file"):
        store.mount(v)


@pytest.mark.root
@needs_root
def test_copy_up_keeps_files_modes_owners_symlinks_and_hardlinks(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    src = rootfs / "srv" / "app"
    (src / "sub").mkdir(parents=True)
    os.chmod(src, 0o750)
    os.chown(src, 123, 456)
    (src / "f").write_text("data")
    os.chown(src / "f", 7, 8)
    os.chmod(src / "f", 0o4755)
    os.link(src / "f", src / "sub" / "same")
    os.symlink("/etc/passwd", src / "abs-link")
    os.mkfifo(src / "fifo")
    volume = tmp_path / "vol" / "_data"
    volume.mkdir(parents=True)
    assert copy_up(rootfs, "/srv/app", volume)
    st = os.stat(volume / "f")
    assert (volume / "f").read_text() == "data" and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o4755, 7, 8)
    assert os.stat(volume / "sub" / "same").st_ino == st.st_ino
    assert os.readlink(volume / "abs-link") == "/etc/passwd"
    assert (volume / "fifo").is_fifo()
    root_st = os.stat(volume)
    assert (root_st.st_mode & 0o777, root_st.st_uid, root_st.st_gid) == (0o750, 123, 456)
    # a volume with content is never overwritten
    (src / "g").write_text("new")
    assert not copy_up(rootfs, "/srv/app", volume)
    assert not (volume / "g").exists()


@pytest.mark.root
@needs_root
def test_copy_up_resolves_an_image_symlink_inside_the_rootfs_never_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "srv").mkdir(parents=True)
    (outside / "srv" / "secret").write_text("host secret")
    rootfs = tmp_path / "rootfs"
    (rootfs / "srv").mkdir(parents=True)
    (rootfs / "srv" / "mine").write_text("image file")
    os.symlink(str(outside), rootfs / "abs")            # absolute: means <rootfs>/<outside>, which is not there
    os.symlink("../../../../../../../..", rootfs / "up")  # climbs: stops at the rootfs's root
    os.symlink(str(outside / "srv"), rootfs / "last")    # the target itself a symlink: not followed at all
    volume = tmp_path / "vol"
    volume.mkdir()
    assert not copy_up(rootfs, "/abs/srv", volume)
    assert not copy_up(rootfs, "/last", volume)
    assert os.listdir(volume) == []
    assert copy_up(rootfs, "/up/srv", volume)
    assert os.listdir(volume) == ["mine"]


@pytest.mark.root
@needs_root
def test_copy_up_of_a_missing_or_non_directory_target_copies_nothing(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "file").write_text("x")
    volume = tmp_path / "vol"
    volume.mkdir()
    assert not copy_up(rootfs, "/missing", volume)
    assert not copy_up(rootfs, "/file", volume)
    assert os.listdir(volume) == []


@pytest.mark.root
@needs_root
def test_a_hard_link_is_never_made_through_a_symlink_swapped_into_the_volume(tmp_path: Path) -> None:
    from berth.volumes.copyup import _link

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    volume = tmp_path / "vol"
    volume.mkdir()
    os.symlink(str(outside), volume / "sub")   # what a container using the volume could plant mid-copy
    top = os.open(volume, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError):
            _link(top, "sub/secret", top, "stolen")
    finally:
        os.close(top)
    assert not (volume / "stolen").exists() and os.stat(outside / "secret").st_nlink == 1
