"""The pure half: Docker's `-v` grammar, HostConfig.Mounts checks, precedence, order and the OCI mounts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.api.mounts_json import parse_host_mounts, parse_mount, render_mounts
from berth.engine.mounts import (
    MountPoint,
    MountType,
    merge,
    ordered,
    parse_bind,
    parse_tmpfs,
    parse_volumes_from,
    rootfs_propagation,
    spec_mounts,
    tmpfs_size_option,
)
from berth.errors import InvalidArgument
from berth.volumes.store import check_name, check_options, mount_flags


def test_a_bind_string_with_an_absolute_source_is_a_bind_mount_private_by_default() -> None:
    m = parse_bind("/host/dir:/ctr:ro")
    assert (m.type, m.source, m.destination, m.read_only, m.mode, m.propagation, m.create_source) == \
        (MountType.BIND, "/host/dir", "/ctr", True, "ro", "rprivate", True)
    assert parse_bind("/a/../b:/c/").source == "/b" and parse_bind("/a:/c/").destination == "/c"
    assert parse_bind("/a:/b:ro,rshared").propagation == "rshared"


def test_a_bind_string_with_a_name_is_a_named_volume_with_docker_s_default_mode_z() -> None:
    m = parse_bind("data:/srv")
    assert (m.type, m.source, m.mode, m.read_only, m.copy_up, m.anonymous) == \
        (MountType.VOLUME, "data", "z", False, True, False)
    assert parse_bind("data:/srv:nocopy").copy_up is False
    assert parse_bind("data:/srv:ro").mode == "ro"
    anon = parse_bind("/just/a/path")
    assert anon.type is MountType.VOLUME and anon.anonymous and anon.source == ""


@pytest.mark.parametrize(("spec", "message"), [
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("v:/x:bogus", "invalid mode: bogus"),
    ("v:/x:ro,rw", "invalid mode: ro,rw"),
    ("v:x", "invalid volume specification: 'v:x': invalid mount config for type \"volume\": invalid mount path: "
            "'x' mount path must be absolute"),
    ("v:/", "invalid volume specification: 'v:/': invalid mount config for type \"volume\": invalid "
            "specification: destination can't be '/'"),
    ("/h:/x:nocopy", "invalid volume specification: '/h:/x:nocopy': invalid mount config for type \"bind\": field "
                     "VolumeOptions must not be specified"),
    ("v:/x:rshared", "field BindOptions must not be specified"),
    (":/x", "invalid volume specification"),
])
def test_bad_bind_strings_get_dockerd_s_messages(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_bind(spec)
    assert message in str(err.value)


def test_mounts_entries_follow_the_cli_s_shape() -> None:
    bind = parse_mount({"Type": "bind", "Source": "/h", "Target": "/t", "ReadOnly": True,
                        "BindOptions": {"Propagation": "rslave"}})
    assert (bind.read_only, bind.propagation, bind.create_source, bind.recursive) == (True, "rslave", False, True)
    flat = parse_mount({"Type": "bind", "Source": "/h", "Target": "/t",
                        "BindOptions": {"NonRecursive": True, "CreateMountpoint": True}})
    assert (flat.recursive, flat.create_source) == (False, True)
    assert spec_mounts([flat])[0]["options"] == ["bind", "rprivate"]
    assert MountPoint.from_json(flat.to_json()) == flat
    vol = parse_mount({"Type": "volume", "Source": "v", "Target": "/v",
                       "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"},
                                         "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})
    assert (vol.copy_up, vol.labels, vol.driver_opts, vol.mode) == (False, {"a": "b"}, {"type": "tmpfs"}, "z")
    tmp = parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 3 << 20, "Mode": 0o1770}})
    assert tmp.tmpfs_options == ("size=3m", "mode=1770") and tmp.shown


@pytest.mark.parametrize(("raw", "message"), [
    ({"Type": "nfs", "Target": "/x"}, 'invalid mount config for type "nfs": mount type unknown'),
    ({"Type": "bind", "Target": "/x"}, 'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "rel", "Target": "/x"}, "invalid mount path: 'rel' mount path must be absolute"),
    ({"Type": "bind", "Source": "/h", "Target": "/x", "BindOptions": {"Propagation": "bogus"}},
     'invalid mount config for type "bind": invalid propagation mode: bogus'),
    ({"Type": "bind", "Source": "/h", "Target": "/x", "VolumeOptions": {"NoCopy": True}},
     "field VolumeOptions must not be specified"),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True},
     'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'),
    ({"Type": "volume", "Source": "v", "Target": "/x", "BindOptions": {"Propagation": "shared"}},
     "field BindOptions must not be specified"),
    ({"Type": "tmpfs", "Source": "foo", "Target": "/x"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "volume", "Source": "v"}, 'invalid mount config for type "volume": field Target must not be empty'),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}}, "invalid tmpfs size"),
    ("not an object", "expected a JSON object"),
])
def test_bad_mounts_entries_get_dockerd_s_messages(raw: object, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_mount(raw)
    assert message in str(err.value)


def test_tmpfs_entries_and_sizes() -> None:
    t = parse_tmpfs("/run", "size=2m,uid=5")
    assert t.tmpfs_options == ("size=2m", "uid=5") and not t.shown
    with pytest.raises(InvalidArgument, match="invalid mount path: 'run' mount path must be absolute"):
        parse_tmpfs("run", "")
    assert [tmpfs_size_option(n) for n in (1 << 30, 3 << 20, 5 << 10, 1000)] == \
        ["size=1g", "size=3m", "size=5k", "size=1000"]


def test_host_config_parsing_refuses_other_volume_drivers_and_bad_shapes() -> None:
    with pytest.raises(InvalidArgument, match='plugin "nfs" not found'):
        parse_host_mounts({"VolumeDriver": "nfs"})
    with pytest.raises(InvalidArgument, match="Binds"):
        parse_host_mounts({"Binds": "v:/x"})
    assert len(parse_host_mounts({"Binds": ["v:/x"], "Mounts": [{"Type": "tmpfs", "Target": "/t"}],
                                  "Tmpfs": {"/u": ""}})) == 3


def test_binds_and_mounts_replace_volumes_from_but_not_each_other() -> None:
    inherited = [MountPoint(MountType.VOLUME, "/data", "old", host_path="/v/old/_data")]
    requested = [parse_bind("new:/data")]
    merged = merge(inherited, requested, ["/data", "/cache"])
    assert [(m.destination, m.source) for m in merged] == [("/cache", ""), ("/data", "new")]
    assert merged[0].anonymous and merged[0].mode == ""
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        merge([], [parse_bind("a:/x"), parse_tmpfs("/x", "")], [])


def test_parents_are_mounted_before_children() -> None:
    points = [parse_bind(s) for s in ("v1:/a/b/c", "v2:/a", "/h:/a/b", "v3:/z")]
    assert [m.destination for m in ordered(points)] == ["/a", "/z", "/a/b", "/a/b/c"]


def test_spec_mounts_bind_volumes_read_only_and_tmpfs_with_docker_s_defaults() -> None:
    points = [MountPoint(MountType.VOLUME, "/v", "name", read_only=True, host_path="/root/volumes/name/_data"),
              parse_bind("/h:/b:rslave"), parse_tmpfs("/t", "size=1m")]
    spec = spec_mounts(points)
    assert spec == [
        {"destination": "/b", "type": "bind", "source": "/h", "options": ["rbind", "rslave"]},
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]},
        {"destination": "/v", "type": "bind", "source": "/root/volumes/name/_data",
         "options": ["rbind", "rprivate", "ro"]},
    ]
    assert rootfs_propagation(points) == "rslave"
    assert rootfs_propagation([parse_bind("/h:/b:shared"), parse_bind("/g:/c:slave")]) == "rshared"
    assert rootfs_propagation([parse_bind("/h:/b")]) is None
    with pytest.raises(InvalidArgument, match="no source"):
        spec_mounts([parse_bind("unresolved:/x")])


def test_inspect_shapes_per_type() -> None:
    vol = MountPoint(MountType.VOLUME, "/v", "name", mode="z", driver="local", host_path="/r/name/_data")
    assert render_mounts([vol, parse_bind("/h:/b:ro"), parse_tmpfs("/t", ""),
                          parse_mount({"Type": "tmpfs", "Target": "/u"})]) == [
        {"Type": "volume", "Name": "name", "Source": "/r/name/_data", "Destination": "/v", "Driver": "local",
         "Mode": "z", "RW": True, "Propagation": ""},
        {"Type": "bind", "Source": "/h", "Destination": "/b", "Mode": "ro", "RW": False, "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/u", "Mode": "", "RW": True, "Propagation": ""},
    ]


def test_a_mount_point_survives_its_record() -> None:
    m = MountPoint(MountType.VOLUME, "/v", "n", read_only=True, mode="ro", copy_up=False, driver="local",
                   driver_opts={"type": "tmpfs"}, labels={"a": "b"}, anonymous=True, host_path="/x/_data")
    assert MountPoint.from_json(m.to_json()) == m
    t = parse_tmpfs("/t", "size=1m")
    assert MountPoint.from_json(t.to_json()) == t


def test_volumes_from_specs() -> None:
    assert parse_volumes_from("web") == ("web", "")
    assert parse_volumes_from("web:ro") == ("web", "ro")
    with pytest.raises(InvalidArgument, match="invalid mode: bogus"):
        parse_volumes_from("web:bogus")


@pytest.mark.parametrize("name", ["ab", "a1", "my_vol.2-x", "0" * 64])
def test_good_volume_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(("name", "message"), [
    ("a/b", 'create a/b: "a/b" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    ("a", "create a: volume name is too short, names should be at least two alphanumeric characters"),
    ("_ab", "includes invalid characters"), ("..", "includes invalid characters"), ("a b", "invalid characters"),
])
def test_bad_volume_names(name: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_name(name)
    assert message in str(err.value)


def test_local_driver_options() -> None:
    check_options("v", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    with pytest.raises(InvalidArgument, match='create v: invalid option: "size"'):
        check_options("v", {"size": "1"})
    with pytest.raises(InvalidArgument, match='missing required option: "device"'):
        check_options("v", {"type": "tmpfs"})
    assert mount_flags("bind,ro,size=1m,uid=3") == (4096 | 1, "size=1m,uid=3")
    assert mount_flags("ro,rw") == (0, "")

_PIECES = st.sampled_from(["", "/", "a", "/h", "/x/y", "..", "ro", "rw", "z", "nocopy", "rshared", "ro,rw", ":",
                           "data", "/etc/../", "bogus", ","])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=6))
def test_any_bind_string_parses_or_is_refused_as_invalid(parts: list[str]) -> None:
    raw = ":".join(parts)
    try:
        m = parse_bind(raw)
    except InvalidArgument:
        return
    assert m.destination.startswith("/") and m.destination != "/"
    assert m.type is MountType.VOLUME or m.source.startswith("/")
    assert MountPoint.from_json(m.to_json()) == m


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 1 << 31), st.text(max_size=8),
                    st.sampled_from(["bind", "volume", "tmpfs", "/h", "/t", "v1", "rshared"]),
                    st.dictionaries(st.sampled_from(["Propagation", "NoCopy", "SizeBytes", "Mode", "Labels",
                                                     "DriverConfig", "NonRecursive"]),
                                    st.one_of(st.none(), st.booleans(), st.integers(-1, 4096), st.text(max_size=4)),
                                    max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["Type", "Source", "Target", "ReadOnly", "BindOptions", "VolumeOptions",
                                        "TmpfsOptions"]), _VALUES, max_size=7))
def test_any_mounts_entry_parses_or_is_refused_as_invalid(raw: dict[str, object]) -> None:
    try:
        m = parse_mount(raw)
    except InvalidArgument:
        return
    assert m.destination.startswith("/") and m.type in (MountType.BIND, MountType.VOLUME, MountType.TMPFS)
    assert spec_mounts([m if m.type is not MountType.VOLUME else MountPoint(
        m.type, m.destination, m.source, host_path="/v/_data")])
