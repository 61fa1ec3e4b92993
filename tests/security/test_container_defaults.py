"""What a default container may and may not do, seen from inside it, through a private berthd and the real
docker CLI (security-cases.md cases 16 and 17; moby's defaults in section 1).

* capabilities: CapEff = CapPrm = CapBnd = Docker's 14 (0xa80425fb), CapInh = CapAmb = 0; Seccomp mode 2;
* masked paths read empty, /proc/sys and /sys are read-only, /dev holds exactly Docker's set;
* a small static C probe (compiled here with gcc) gets EPERM for unshare (user and mount ns), mount, keyctl,
  io_uring_setup, socket(AF_VSOCK) and socket(AF_ALG); mknod of a block device succeeds but opening it is EPERM
  (the device cgroup); ordinary calls work (the control).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root

PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    printf("%s=%s\n", what, rc >= 0 ? "ok" : errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES"
           : errno == ENOSYS ? "ENOSYS" : strerror(errno));
}

int main(void) {
    char params[120];
    memset(params, 0, sizeof params);
    report("unshare-user", unshare(CLONE_NEWUSER));
    report("unshare-mnt", unshare(CLONE_NEWNS));
    report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    report("add_key", syscall(SYS_add_key, "user", "berth", "x", 1, -3));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    report("vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    report("alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    report("inet", socket(AF_INET, SOCK_STREAM, 0));
    report("getpid", getpid());
    report("mknod-block", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
    report("open-block", open("/tmp/sda", O_RDONLY));
    report("open-null", open("/dev/null", O_RDWR));
    return 0;
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


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "probe"
    out.with_suffix(".c").write_text(PROBE)
    proc = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(out.with_suffix(".c"))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"gcc -static failed (gcc and libc6-dev are in scripts/install.sh): {proc.stderr}"
    return out


def sh(b: PrivateBerthd, script: str, *opts: str) -> str:
    proc = b.docker("run", "--rm", *opts, "busybox", "sh", "-c", script, check=False)
    assert proc.returncode == 0, proc
    return proc.stdout.decode()


def test_capabilities_and_seccomp_of_a_default_container(b: PrivateBerthd) -> None:
    fields = dict(line.split(":", 1) for line in sh(b, "cat /proc/self/status").splitlines() if ":" in line)
    caps = {k: fields[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    assert caps == {"CapInh": "0000000000000000", "CapPrm": "00000000a80425fb", "CapEff": "00000000a80425fb",
                    "CapBnd": "00000000a80425fb", "CapAmb": "0000000000000000"}
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "0"
    # a non-root user gets no effective capabilities, and the bounding set stays Docker's
    user = dict(line.split(":", 1) for line in sh(b, "cat /proc/self/status", "-u", "65534").splitlines()
                if ":" in line)
    assert user["CapEff"].strip() == "0000000000000000" and user["CapBnd"].strip() == "00000000a80425fb"


def test_masked_paths_read_empty_and_proc_sys_and_sys_are_read_only(b: PrivateBerthd) -> None:
    files = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats",
             "/proc/interrupts"]
    script = "; ".join(f'[ -e {f} ] && echo "{f}=$(head -c 64 {f} | wc -c)"' for f in files)
    out = sh(b, script + "; true")
    for line in out.split():
        assert line.endswith("=0"), out
    if Path("/proc/kcore").exists():
        assert "/proc/kcore=0" in out.split()
    dirs = ["/proc/acpi", "/proc/scsi", "/sys/firmware"]
    out = sh(b, "; ".join(f'[ -d {d} ] && echo "{d}=$(ls -A {d} | wc -l)"' for d in dirs) + "; true")
    assert all(line.endswith("=0") for line in out.split()), out
    assert "/sys/firmware=0" in out.split()
    writes = sh(b, "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo sys-written; "
                   "echo berth > /proc/sys/kernel/hostname 2>/dev/null && echo hostname-written; "
                   "touch /sys/berth 2>/dev/null && echo sysfs-written; "
                   "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-written; "
                   "grep -E ' /(proc/sys|sys) ' /proc/self/mounts")
    assert "written" not in writes, writes
    for line in writes.splitlines():
        assert line.split()[3].split(",")[0] == "ro", writes


def test_dev_holds_dockers_set(b: PrivateBerthd) -> None:
    names = set(sh(b, "ls -A /dev").split())
    expected = {"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
                "urandom", "zero"}
    assert expected <= names <= expected | {"core", "console"}, names ^ expected
    links = sh(b, "for f in fd stdin stdout stderr ptmx; do echo $f=$(readlink /dev/$f); done").split()
    assert links == ["fd=/proc/self/fd", "stdin=/proc/self/fd/0", "stdout=/proc/self/fd/1",
                     "stderr=/proc/self/fd/2", "ptmx=pts/ptmx"], links


def test_namespace_mount_key_io_uring_vsock_and_alg_calls_are_refused(b: PrivateBerthd, probe: Path) -> None:
    out = sh(b, "/probe", "-v", f"{probe}:/probe:ro")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got == {
        "unshare-user": "EPERM", "unshare-mnt": "EPERM", "mount": "EPERM", "keyctl": "EPERM", "add_key": "EPERM",
        "io_uring_setup": "EPERM", "vsock": "EPERM", "alg": "EPERM",
        "inet": "ok", "getpid": "ok", "mknod-block": "ok", "open-block": "EPERM", "open-null": "ok",
    }, out


def test_sys_admin_without_seccomp_lifts_the_refusals_the_probe_is_the_control(b: PrivateBerthd,
                                                                                probe: Path) -> None:
    """The refusals above come from berth's defaults, not from the probe or the kernel (--privileged cannot be
    tested here: this machine's bounding set lacks CAP_SYS_RESOURCE)."""
    out = sh(b, "/probe", "-v", f"{probe}:/probe:ro", "--cap-add", "SYS_ADMIN", "--security-opt",
             "seccomp=unconfined")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got["unshare-mnt"] == "ok" and got["keyctl"] == "ok" and got["mount"] == "ok", out
    assert got["alg"] != "EPERM" and got["io_uring_setup"] != "EPERM", out
