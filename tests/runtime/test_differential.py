"""The same bundles under berth-runtime and under Debian's runc: what the container sees must match.

Compared: /proc/self/status (capabilities, NoNewPrivs, Seccomp), /proc/self/mountinfo (mount points, types, options),
/proc/1/fd, hostname, ids and groups, rlimits, pid 1, /dev, environment, and the cgroup limits read from inside and
from the host. Known, deliberate differences are normalised below, each with its reason:

- /sys/fs/cgroup: the spec asks for it "ro". runc 1.1 leaves the tmpfs holding the hierarchies rw (only the
  hierarchies are ro); berth makes the tmpfs ro as well. Stricter, so kept.
- the source field of the name=systemd hierarchy: runc mounts it fresh ("systemd"), berth bind-mounts the
  container's directory of the host's hierarchy (whose source is "cgroup"). Same hierarchy, same directory.
- the order of the per-hierarchy mounts under /sys/fs/cgroup (runc follows its own controller list): compared sorted.
- the order of rules in devices.list (the order each runtime wrote them in): compared as sets.
- the targets of fds 0-2 (each runtime's test gets its own output files): only the fd numbers are compared.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.conftest import Bundles, Runtime, container_id

from berth.runtime.cgroups import open_cgroup
from berth.runtime.seccomp import default_seccomp

pytestmark = [pytest.mark.root, pytest.mark.interop]

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
               "CAP_KILL", "CAP_AUDIT_WRITE"]

SCRIPT = r"""
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status
echo "== mountinfo"; cat /proc/self/mountinfo
echo "== fds"; ls /proc/1/fd
echo "== hostname"; hostname
echo "== id"; id
echo "== ulimit"; ulimit -a
echo "== pid"; echo $$
echo "== dev"; ls -l /dev | awk '{print $1, $NF}'
echo "== env"; env | sort
echo "== umask"; umask
echo "== cwd"; pwd
echo "== cgroup"
for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes pids/pids.max cpu/cpu.shares \
         cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus; do
  echo "$f $(cat /sys/fs/cgroup/$f 2>&1)"
done
echo "== oom"; cat /proc/self/oom_score_adj
echo "== sysctl"; cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni
echo "== masked"; cat /proc/kcore 2>&1 | head -c 20 | wc -c; ls /sys/firmware | wc -l
echo "== ro"; (echo 1 > /proc/sys/kernel/shmmni) 2>&1 | sed 's/.*: //'
echo "== end"
"""


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def normalise_mountinfo(lines: list[str]) -> list[str]:
    rows = []
    for line in lines:
        fields = line.split(" ")
        sep = fields.index("-")
        root, point, opts = fields[3], fields[4], fields[5]
        fstype, source, super_opts = fields[sep + 1], fields[sep + 2], fields[sep + 3]
        if point == "/sys/fs/cgroup":
            opts = opts.replace("ro,", "rw,", 1)  # see the module docstring
        if fstype == "cgroup":
            source = "cgroup"
            root = re.sub(r"/[^/]*$", "/<id>", root)  # the container ids differ
        rows.append(f"{root} {point} {opts} {fstype} {source} {super_opts}")
    return sorted(rows)


def _cgroups_path(bundle: Path) -> str | None:
    path: str | None = json.loads((bundle / "config.json").read_text())["linux"].get("cgroupsPath")
    return path


def _read(directory: str, name: str) -> str:
    return (Path(directory) / name).read_text().strip()


def _bundle(bundles: Bundles, tmp_path: Path, mutate: Any = None) -> Path:
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    outdir.chmod(0o777)  # the docker-like container runs as uid 1000

    def configure(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(outdir),
                              "options": ["rbind", "rw"]})
        # each container writes to /out/<its hostname-independent id file>: the id comes from an env var
        cfg["process"]["args"] = ["sh", "-c", f'exec > "/out/$CID.txt" 2>&1; {SCRIPT}']
        if mutate is not None:
            mutate(cfg)

    return bundles.make([], mutate=configure)


def compare(a: dict[str, Any], b: dict[str, Any]) -> None:
    seen_a, seen_b = a["seen"], b["seen"]
    assert set(seen_a) == set(seen_b)
    for key in seen_a:
        if key == "mountinfo":
            assert normalise_mountinfo(seen_a[key]) == normalise_mountinfo(seen_b[key])
        elif key == "env":
            strip = [line for line in seen_a[key] if not line.startswith("CID=")]
            assert strip == [line for line in seen_b[key] if not line.startswith("CID=")]
        else:
            assert seen_a[key] == seen_b[key], key
    # devices.list is compared as a set: the kernel lists rules in the order each runtime wrote them
    host_a = a["host"] | {"devices": sorted(a["host"]["devices"].splitlines())}
    host_b = b["host"] | {"devices": sorted(b["host"]["devices"].splitlines())}
    assert host_a == host_b


@pytest.fixture
def two_bundles(bundles: Bundles, tmp_path: Path) -> Any:
    def make(mutate: Any = None) -> tuple[Path, Path]:
        made = []
        for tag in ("b", "r"):
            def configure(cfg: dict[str, Any], tag: str = tag) -> None:
                cfg["process"]["env"].append(f"CID={tag}")
                if mutate is not None:
                    mutate(cfg)
            made.append(_bundle(bundles, tmp_path, configure))
        return made[0], made[1]
    return make


def run_pair(berth: Runtime, runc: Runtime, pair: tuple[Path, Path], request: pytest.FixtureRequest
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    out = []
    for rt, bundle, tag in ((berth, pair[0], "b"), (runc, pair[1], "r")):
        cid = container_id(request, "-" + tag)
        cgroup = open_cgroup(_cgroups_path(bundle), cid)
        rt("create", "--bundle", str(bundle), cid, check=True)
        host = {name: _read(cgroup.dir(ctrl), file) for name, ctrl, file in (
            ("memory", "memory", "memory.limit_in_bytes"), ("pids", "pids", "pids.max"),
            ("quota", "cpu", "cpu.cfs_quota_us"), ("shares", "cpu", "cpu.shares"),
            ("devices", "devices", "devices.list"))}
        rt("start", cid, check=True)
        import time

        deadline = time.monotonic() + 20
        while json.loads(rt("state", cid, check=True).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        text = (bundle.parent / "out" / f"{tag}.txt").read_text()
        rt("delete", "--force", cid, check=True)
        out.append({"seen": sections(text), "host": host})
    # the root mount names each runtime's own bundle
    for result, bundle in zip(out, pair, strict=True):
        if "mountinfo" in result["seen"]:
            result["seen"]["mountinfo"] = [line.replace(str(bundle), "<bundle>")
                                           for line in result["seen"]["mountinfo"]]
    return out[0], out[1]


def test_runc_s_example_spec_looks_the_same_from_inside(berth: Runtime, runc: Runtime, two_bundles: Any,
                                                        request: pytest.FixtureRequest) -> None:
    a, b = run_pair(berth, runc, two_bundles(), request)
    compare(a, b)
    assert a["seen"]["pid"] == ["1"]
    assert a["seen"]["status"][-2:] == ["NoNewPrivs:\t1", "Seccomp:\t0"]


def docker_like(cfg: dict[str, Any]) -> None:
    """What dockerd asks of a runtime for `docker run --user 1000 --memory 64m --pids-limit 50 --cpus 0.5 ...`."""
    caps = list(DOCKER_CAPS)
    cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    cfg["process"]["noNewPrivileges"] = False
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 100], "umask": 0o027}
    cfg["process"]["cwd"] = "/home/alice"
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048},
                                 {"type": "RLIMIT_NPROC", "hard": 500, "soft": 400}]
    cfg["process"]["oomScoreAdj"] = 500
    cfg["hostname"] = "docker-like"
    cfg["root"]["readonly"] = True
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "2048"}
    cfg["linux"]["resources"] = {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 136, "access": "rwm"}],
        "memory": {"limit": 64 << 20, "swap": 128 << 20},
        "pids": {"limit": 50},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
    }
    cfg["linux"]["maskedPaths"] = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                   "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                   "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                                   "/sys/devices/virtual/powercap"]
    cfg["linux"]["readonlyPaths"] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    cfg["linux"]["seccomp"] = default_seccomp(caps).to_json()
    cfg["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "mode=755"]})


def test_a_docker_like_spec_looks_the_same_from_inside(berth: Runtime, runc: Runtime, two_bundles: Any,
                                                       request: pytest.FixtureRequest) -> None:
    a, b = run_pair(berth, runc, two_bundles(docker_like), request)
    compare(a, b)
    seen = a["seen"]
    assert seen["status"][:5] == ["CapInh:\t0000000000000000", "CapPrm:\t0000000000000000",
                                  "CapEff:\t0000000000000000", "CapBnd:\t00000000a80425fb",
                                  "CapAmb:\t0000000000000000"]  # uid 1000 without ambient caps: none effective
    assert seen["status"][-2:] == ["NoNewPrivs:\t0", "Seccomp:\t2"]
    assert seen["id"] == ["uid=1000(alice) gid=1000(alice) groups=10(wheel),100(users)"]
    assert seen["hostname"] == ["docker-like"] and seen["umask"] == ["0027"] and seen["cwd"] == ["/home/alice"]
    assert seen["oom"] == ["500"] and seen["sysctl"] == ["0", "2048"]
    assert a["host"]["memory"] == str(64 << 20) and a["host"]["pids"] == "50" and a["host"]["quota"] == "50000"
    assert "c 1:3 rwm" in a["host"]["devices"].splitlines()


def in_a_user_namespace(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_a_user_namespace_looks_the_same_from_inside(berth: Runtime, runc: Runtime, two_bundles: Any,
                                                     request: pytest.FixtureRequest, tmp_path: Path) -> None:
    pair = two_bundles(in_a_user_namespace)
    for bundle in pair:  # as userns-remap does: the image belongs to the container's root
        for path in [bundle / "rootfs", *(bundle / "rootfs").rglob("*")]:
            os.lchown(path, 200000, 200000)
    # the container's root (host uid 200000) must be able to reach the bundle: pytest's base dir is 0700
    saved = [(d, d.stat().st_mode) for d in (tmp_path, *tmp_path.parents) if str(d).startswith("/tmp/")]
    for d, mode in saved:
        d.chmod(mode | 0o001)
    try:
        a, b = run_pair(berth, runc, pair, request)
    finally:
        for d, mode in saved:
            d.chmod(mode)
    compare(a, b)
    assert a["seen"]["id"] == ["uid=0(root) gid=0(root)"]
    # the devices could not be made with mknod in a user namespace: they are the host's, bind-mounted
    assert "crw-rw-rw- null" in a["seen"]["dev"]


def test_the_session_keyring_is_the_container_s_own(berth: Runtime, runc: Runtime, two_bundles: Any,
                                                   bundles: Bundles, request: pytest.FixtureRequest) -> None:
    """Like runc, a fresh session keyring named _ses.<id> (keyctl is allowed here: no seccomp profile)."""
    if bundles.probe is None:
        pytest.skip("no C compiler to build the probe (apt install gcc libc6-dev)")

    def keys(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["sh", "-c", 'exec > "/out/$CID.txt" 2>&1; echo "== keys"; probe session; '
                                  "echo '== end'"]

    a, b = run_pair(berth, runc, two_bundles(keys), request)
    assert a["seen"]["keys"] == ["_ses." + container_id(request, "-b")]
    assert b["seen"]["keys"] == ["_ses." + container_id(request, "-r")]
