"""Pure parts of the runtime, no root needed: the spec model, passwd/group parsing, cgroup planners, the v2 writer
against a fake tree, mount options."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from berth.errors import InvalidArgument, NotFound, RuntimeFailure
from berth.oci.spec import Cpu, DeviceRule, Memory, Resources, Spec
from berth.runtime import cgroups, users
from berth.runtime.commands import default_spec
from berth.runtime.mounts import parse_options
from berth.util import linux

# --- spec ---


def test_runc_s_example_round_trips() -> None:
    raw = default_spec()
    spec = Spec.from_json(raw)
    assert spec.process is not None and spec.process.args == ("sh",)
    assert spec.linux.namespace("pid") is not None and spec.linux.namespace("user") is None
    assert spec.mounts[2].options == ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")
    assert Spec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace type 'bogus'"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
    (lambda c: c["mounts"].append({"destination": "x", "type": "tmpfs"}), "not an absolute path"),
    (lambda c: c["mounts"].append({"destination": "/a/../b", "type": "tmpfs"}), "contains '..'"),
    (lambda c: c["process"].update(cwd="relative"), "must be an absolute path"),
    (lambda c: c["process"]["user"].update(uid=-1), "must be >= 0"),
    (lambda c: c["process"]["user"].update(uid="0"), "must be an integer"),
    (lambda c: c.update(mounts={"a": 1}), "must be an array"),
    (lambda c: c["linux"].update(rootfsPropagation="sideways"), "unknown rootfsPropagation"),
    (lambda c: c["linux"].update(maskedPaths=["proc/kcore"]), "must be absolute"),
    (lambda c: c["linux"]["resources"]["devices"].append({"allow": True, "access": "rwx"}), "made of r, w, m"),
    (lambda c: c.update(hooks={"prestrat": []}), "unknown hook kind"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ALLOW",
                                          "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                                                        "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]}),
     "unknown seccomp operator"),
    (lambda c: c.pop("root"), "root is missing"),
])
def test_a_bad_spec_names_the_field(mutate: Any, message: str) -> None:
    raw = default_spec()
    mutate(raw)
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        Spec.from_json(raw)


# --- users ---

PASSWD = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\nalice:x:1000:1000::/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:root,alice\nstaff:x:50:alice\nalice:x:1000:\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


def test_parsers_skip_comments_and_malformed_lines() -> None:
    assert [p.name for p in users.parse_passwd(PASSWD)] == ["root", "alice"]
    assert users.parse_group(GROUP)[1].members == ("root", "alice")


@pytest.mark.parametrize("spec, expected", [
    ("alice", (1000, 1000, (10, 50), "/home/alice")),
    ("alice:staff", (1000, 50, (), "/home/alice")),
    ("1000", (1000, 1000, (10, 50), "/home/alice")),
    ("1000:7", (1000, 7, (), "/home/alice")),
    ("4242", (4242, 0, (), "/")),
    ("root", (0, 0, (10,), "/root")),
])
def test_resolve_user(rootfs: Path, spec: str, expected: tuple[int, int, tuple[int, ...], str]) -> None:
    who = users.resolve_user(str(rootfs), spec)
    assert (who.uid, who.gid, who.groups, who.home) == expected


@pytest.mark.parametrize("spec, message", [("ghost", "unable to find user ghost"),
                                           ("alice:ghosts", "unable to find group ghosts")])
def test_unknown_names_are_not_found(rootfs: Path, spec: str, message: str) -> None:
    with pytest.raises(NotFound, match=message):
        users.resolve_user(str(rootfs), spec)


def test_a_symlinked_passwd_is_resolved_inside_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "passwd").write_text("bob:x:7:7::/b:/bin/sh\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("mallory:x:0:0::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to(f"../../{outside.name}/passwd")  # climbs out: clamped to the root
    assert users.read_in_root(str(root), "/etc/passwd") is None
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("/real/passwd")  # absolute: means <root>/real/passwd
    assert users.resolve_user(str(root), "bob").uid == 7


def test_the_oci_process_user_gets_no_member_groups(rootfs: Path) -> None:
    """runc passes "uid:gid": supplementary groups are only the spec's additionalGids."""
    who = users.exec_user(users.parse_passwd(PASSWD), users.parse_group(GROUP), 1000, 1000, (5, 5, 6))
    assert who.groups == (5, 6) and who.home == "/home/alice"


# --- cgroups ---


def test_v1_plan_writes_limits_in_a_valid_order_and_appends_runc_s_devices() -> None:
    res = Resources(devices=(DeviceRule(False),), memory=Memory(limit=64 << 20, swap=128 << 20, reservation=1 << 20),
                    cpu=Cpu(shares=512, quota=50000, period=100000, cpus="0-1"), pids_limit=100)
    plan = cgroups.v1_plan(res)
    assert plan["memory"] == [("memory.limit_in_bytes", str(64 << 20)), ("memory.memsw.limit_in_bytes",
                                                                         str(128 << 20)),
                              ("memory.soft_limit_in_bytes", str(1 << 20))]
    assert plan["cpu"] == [("cpu.shares", "512"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")]
    assert plan["cpuset"] == [("cpuset.cpus", "0-1")] and plan["pids"] == [("pids.max", "100")]
    assert plan["devices"][0] == ("devices.deny", "a")
    assert ("devices.allow", "c 136:* rwm") in plan["devices"] and ("devices.allow", "b *:* m") in plan["devices"]


def test_v2_plan_converts_v1_semantics() -> None:
    res = Resources(memory=Memory(limit=64 << 20, swap=96 << 20), cpu=Cpu(shares=1024, quota=50000, period=100000),
                    pids_limit=-1, unified={"io.weight": "50"})
    assert cgroups.v2_plan(res) == [
        ("memory.max", str(64 << 20)), ("memory.swap.max", str(32 << 20)), ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"), ("pids.max", "max"), ("io.weight", "50")]
    assert cgroups.shares_to_weight(2) == 1 and cgroups.shares_to_weight(262144) == 10000
    with pytest.raises(InvalidArgument, match="smaller than memory.limit"):
        cgroups.v2_plan(Resources(memory=Memory(limit=64 << 20, swap=32 << 20)))


def _fake_v2_tree(root: Path, controllers: str) -> Path:
    for d in (root, root / "a"):
        d.mkdir(parents=True, exist_ok=True)
        (d / "cgroup.controllers").write_text(controllers + "\n")
        (d / "cgroup.subtree_control").write_text("")
    leaf = root / "a" / "c1"
    leaf.mkdir()
    for name in ("memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max", "cgroup.procs",
                 "cgroup.freeze", "memory.events"):
        (leaf / name).write_text("")
    (leaf / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    return leaf


def test_the_v2_writer_against_a_fake_tree(tmp_path: Path) -> None:
    leaf = _fake_v2_tree(tmp_path, "cpuset cpu io memory pids")
    cg = cgroups.CgroupV2(str(tmp_path), "a/c1")
    cg.create(Resources(memory=Memory(limit=1 << 30), cpu=Cpu(quota=20000, period=100000), pids_limit=64))
    assert (leaf / "memory.max").read_text() == str(1 << 30)
    assert (leaf / "cpu.max").read_text() == "20000 100000" and (leaf / "pids.max").read_text() == "64"
    # every ancestor delegates what the leaf needs
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (tmp_path / "a" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    cg.add(1234)
    assert (leaf / "cgroup.procs").read_text() == "1234"
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_kills() == 1
    assert cgroups.from_record(cg.to_record()).dir == str(leaf)


def test_the_v2_writer_refuses_a_controller_the_parent_lacks(tmp_path: Path) -> None:
    leaf = _fake_v2_tree(tmp_path, "cpu io")
    with pytest.raises(RuntimeFailure, match="controllers memory are not available"):
        cgroups.CgroupV2(str(tmp_path), "a/c1").create(Resources(memory=Memory(limit=1 << 30)))
    assert leaf.exists()  # it existed before: not ours to remove


def test_cgroup_paths_follow_runc() -> None:
    mountinfo = ("30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
                 "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n")
    own = "4:memory:/user.slice\n3:cpu,cpuacct:/\n0::/\n"
    rel = cgroups.open_cgroup(None, "c1", mountinfo=mountinfo, own=own)
    assert isinstance(rel, cgroups.CgroupV1)
    assert rel.dir("memory") == "/sys/fs/cgroup/memory/user.slice/c1"
    assert rel.dir("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct/c1"
    absolute = cgroups.open_cgroup("/berth/c1", "c1", mountinfo=mountinfo, own=own)
    assert isinstance(absolute, cgroups.CgroupV1) and absolute.dir("memory") == "/sys/fs/cgroup/memory/berth/c1"
    systemd = cgroups.open_cgroup("system.slice:berth:c1", "c1", mountinfo=mountinfo, own=own)
    assert isinstance(systemd, cgroups.CgroupV1)
    assert systemd.dir("memory") == "/sys/fs/cgroup/memory/system.slice/berth-c1.scope"
    v2 = cgroups.open_cgroup(None, "c1", mountinfo="25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                             own="0::/user.slice/session-1.scope\n")
    assert isinstance(v2, cgroups.CgroupV2) and v2.dir == "/sys/fs/cgroup/user.slice/session-1.scope/c1"
    with pytest.raises(InvalidArgument):
        cgroups.open_cgroup("/a/../b", "c1", mountinfo=mountinfo, own=own)


@pytest.mark.root
def test_v2_freeze_on_a_real_cgroup2_mount(tmp_path: Path) -> None:
    """This host runs v1; the cgroup2 hierarchy (no controllers needed for freezing) is mounted privately."""
    import subprocess

    mnt = tmp_path / "cg2"
    mnt.mkdir()
    try:
        linux.mount("cgroup2", str(mnt), "cgroup2")
    except OSError as exc:
        pytest.skip(f"cannot mount cgroup2 here: {exc}")
    proc = None
    cg = cgroups.CgroupV2(str(mnt), f"berth-test-{os.getpid()}")
    try:
        cg.create(None)
        proc = subprocess.Popen(["sh", "-c", "while :; do :; done"])
        cg.add(proc.pid)
        assert cg.pids() == [proc.pid]
        cg.set_frozen(True)
        assert cg.is_frozen()
        cg.set_frozen(False)
        assert not cg.is_frozen()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        cg.destroy()
        linux.umount(str(mnt))
    assert not (mnt / f"berth-test-{os.getpid()}").exists()


# --- mounts ---


def test_mount_options_split_into_flags_data_and_propagation() -> None:
    flags, data, prop = parse_options(("nosuid", "noexec", "mode=755", "rw", "size=64k", "rslave", "rbind"))
    assert flags == linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_BIND | linux.MS_REC
    assert data == "mode=755,size=64k" and prop == (linux.MS_SLAVE | linux.MS_REC,)
    assert parse_options(("ro", "rw"))[0] == 0


# --- records (the dataclass stand-in the spec model uses) ---


def test_records_behave_like_frozen_dataclasses() -> None:
    import pickle

    from berth.oci.record import FrozenInstanceError, replace
    from berth.oci.spec import Mount, Process

    m = Mount("/data", "bind", "/src", ("rbind",))
    assert m == Mount(destination="/data", type="bind", source="/src", options=("rbind",))
    assert m != Mount("/data") and hash(m) == hash(Mount("/data", "bind", "/src", ("rbind",)))
    assert repr(Mount("/x")) == "Mount(destination='/x', type=None, source=None, options=())"
    with pytest.raises(FrozenInstanceError):
        m.destination = "/elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing required argument 'destination'"):
        Mount()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'dest'"):
        Mount("/x", dest="/y")  # type: ignore[call-arg]
    assert replace(m, destination="/other").destination == "/other" and m.destination == "/data"
    with pytest.raises(TypeError, match="no field 'bogus'"):
        replace(m, bogus=1)
    assert pickle.loads(pickle.dumps(m)) == m
    a, b = Process(args=("sh",)), Process(args=("sh",))
    assert a.user is not b.user and a.user == b.user  # default_factory: a fresh default each time
    assert not hasattr(m, "__dict__")


def test_the_v2_device_program_is_built_from_the_rules_last_first() -> None:
    from berth.runtime.devicefilter import compile_rules

    prog = compile_rules((DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm")))
    insns = [prog[i:i + 8] for i in range(0, len(prog), 8)]
    assert len(prog) % 8 == 0 and insns[-1][0] == 0x95  # ends with exit
    # preamble (7), then the allow rule first: type, major, minor checks, r0 = 1, exit
    assert [i[0] for i in insns[7:12]] == [0x55, 0x55, 0x55, 0xB7, 0x95]
    assert int.from_bytes(insns[10][4:], "little") == 1


@pytest.mark.root
def test_the_v2_device_filter_is_enforced(tmp_path: Path) -> None:
    """On a private cgroup2 mount: a process in the cgroup may open /dev/null, not /dev/kmsg."""
    import subprocess

    mnt = tmp_path / "cg2"
    mnt.mkdir()
    try:
        linux.mount("cgroup2", str(mnt), "cgroup2")
    except OSError as exc:
        pytest.skip(f"cannot mount cgroup2 here: {exc}")
    cg = cgroups.CgroupV2(str(mnt), f"berth-devtest-{os.getpid()}")
    try:
        cg.create(Resources(devices=(DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"))))
        script = (f"(exec 4</dev/kmsg) && echo kmsg-before; echo $$ > {cg.dir}/cgroup.procs; (exec 3</dev/null) && echo null-ok; "
                  "(exec 4</dev/kmsg) 2>/dev/null && echo kmsg-ok || echo kmsg-denied; "
                  "(exec 5</dev/full) 2>/dev/null && echo full-ok || echo full-denied")
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
        # /dev/full (1:7) is one of runc's always-allowed devices
        assert out.stdout.split() == ["kmsg-before", "null-ok", "kmsg-denied", "full-ok"], out.stderr
    finally:
        cg.destroy()
        linux.umount(str(mnt))


# --- jsonio (JSON without the json package on the start path) ---


@pytest.mark.parametrize("text", ['{"a": [1, 2.5, true, null, "\\u00e9x"], "b": {}}', "  [] \n", '"s"', "-1e3",
                                  '{"nested": {"deep": [[[]]]}}'])
def test_jsonio_reads_what_json_reads(text: str) -> None:
    from berth.runtime import jsonio

    assert jsonio.loads(text) == json.loads(text) == jsonio.loads(text.encode())
    value = json.loads(text)
    assert json.loads(jsonio.dumps(value)) == value


@pytest.mark.parametrize("text", ["{not json", "[] x", "", "   ", '{"a": 1,}', "[1, 2"])
def test_jsonio_rejects_what_json_rejects(text: str) -> None:
    from berth.runtime import jsonio

    with pytest.raises(ValueError):
        jsonio.loads(text)


def test_jsonio_refuses_what_it_cannot_encode() -> None:
    from berth.runtime import jsonio

    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"a": object()})
