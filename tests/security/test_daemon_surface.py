"""berthd's own attack surface (security-cases.md case 15, CVE-2021-41091, CVE-2019-14271):

* the API socket is 0660 root:<group> once it answers, and is never seen looser while berthd starts (a watcher
  stats it in a tight loop from before berthd is launched); berthd and everything it starts listen on no TCP or
  UDP port of the host; a tcp:// --host and an unknown --group are refused with a clear error and no socket;
* the data root is 0710 root and its layer and container directories are not traversable by other users: a
  setuid file of an image cannot be reached by an unprivileged host user (CVE-2021-41091);
* no code of an image runs in berth's own processes: an image whose nsswitch.conf names an NSS module of its own
  (a library that leaves a marker when loaded) is run with --user by name, exec'd with -u and copied with
  `cp -a`; the marker never appears (CVE-2019-14271).
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import BERTHD, PrivateBerthd

pytestmark = pytest.mark.root


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    with_children = [pid, *_descendants(pid)]
    for p in with_children:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    out.add(target[8:-1])
        except OSError:
            continue
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _host_listeners() -> dict[str, str]:
    """inode -> 'proto local-address' of every listening TCP and bound UDP socket of the host's netns."""
    found = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/net/{proto}") as f:
            rows = f.read().splitlines()[1:]
        for row in rows:
            fields = row.split()
            listening = fields[3] == "0A" if proto.startswith("tcp") else fields[3] == "07"
            if listening:
                found[fields[9]] = f"{proto} {fields[1]}"
    return found


def test_the_socket_is_never_looser_than_0660_and_nothing_listens_on_the_network() -> None:
    daemon = PrivateBerthd()
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                st = os.lstat(daemon.socket_path)
            except FileNotFoundError:
                continue
            seen.add(stat.S_IMODE(st.st_mode) | (st.st_uid << 16))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with daemon:
            stop.set()
            watcher.join()
            st = os.lstat(daemon.socket_path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
            assert (st.st_uid, st.st_gid) == (0, 0)
            assert seen and all(m & 0o007 == 0 for m in seen), sorted(oct(m & 0o777) for m in seen)
            assert all(m >> 16 == 0 for m in seen)
            # a running container (monitor, DNS in its netns, published port through the kernel) opens nothing
            assert daemon.api("POST", "/berth/images/bootstrap?base=busybox")[0] == 200
            daemon.docker("network", "create", "surface")
            daemon.docker("run", "-d", "--network", "surface", "-p", "127.0.0.1::80", "busybox", "sleep", "60")
            assert daemon.proc is not None
            ours = _socket_inodes(daemon.proc.pid)
            listening = {inode: what for inode, what in _host_listeners().items() if inode in ours}
            assert listening == {}, listening
    finally:
        stop.set()
        watcher.join()


@pytest.mark.parametrize("args, fragment", [
    (("--host", "tcp://127.0.0.1:23750"), "unix:// sockets only"),
    (("--group", "no-such-group-berth"), "no-such-group-berth"),
])
def test_a_tcp_host_or_an_unknown_group_is_refused_without_a_socket(tmp_path: Path, args: tuple[str, ...],
                                                                     fragment: str) -> None:
    sock = tmp_path / "b.sock"
    argv = [BERTHD, "--root", str(tmp_path / "root"), "--exec-root", str(tmp_path / "exec")]
    if args[0] != "--host":
        argv += ["--host", f"unix://{sock}"]
    proc = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not sock.exists()


def test_a_group_owns_the_socket_when_asked() -> None:
    try:
        gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no docker group on this machine")
    with PrivateBerthd(daemon_args=("--group", "docker")) as daemon:
        st = os.lstat(daemon.socket_path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o660)


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=30)


def test_the_data_root_keeps_other_users_out_of_layers_and_containers(b: PrivateBerthd) -> None:
    st = os.stat(b.root)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) & 0o007 == 0, oct(st.st_mode)
    cid = b.docker("run", "-d", "busybox", "sh", "-c",
                   "cp /bin/busybox /suid && chmod 4755 /suid && sleep 60").stdout.decode().strip()
    try:
        deadline = time.monotonic() + 10
        suid = []
        while not suid and time.monotonic() < deadline:
            suid = [p for p in b.root.rglob("suid") if p.is_file() and p.stat().st_mode & stat.S_ISUID]
            time.sleep(0.1)
        assert suid, "the container's setuid copy is not under the data root"
        for path in suid:
            proc = _as_nobody(str(path), "id", "-u")
            assert proc.returncode != 0 and "0" not in proc.stdout.split(), (path, proc)
            assert _as_nobody("stat", str(path)).returncode != 0
        for sub in b.root.iterdir():
            listed = _as_nobody("ls", str(sub))
            assert listed.returncode != 0, (sub, listed.stdout)
    finally:
        b.docker("rm", "-f", cid, check=False)


NSS = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void loaded(void) {
    int fd = open("/nss-module-loaded", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { write(fd, "loaded\n", 7); close(fd); }
}
int _nss_evil_getpwnam_r(void) { return 0; }
"""


def test_no_nss_module_of_the_image_is_ever_loaded_by_berth(b: PrivateBerthd, tmp_path: Path) -> None:
    lib = tmp_path / "libnss_evil.so.2"
    (tmp_path / "nss.c").write_text(NSS)
    cc = subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "nss.c")], capture_output=True,
                        text=True)
    assert cc.returncode == 0, cc.stderr
    (tmp_path / "nsswitch.conf").write_text("passwd: evil files\ngroup: evil files\nhosts: evil files\n")
    b.docker("create", "--name", "nssbase", "busybox", "true")
    try:
        b.docker("cp", str(tmp_path / "nsswitch.conf"), "nssbase:/etc/nsswitch.conf")
        b.docker("cp", str(lib), "nssbase:/tmp/libnss_evil.so.2")
        setup = ("for d in /lib /lib64 /usr/lib /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do mkdir -p $d && "
                 "cp /tmp/libnss_evil.so.2 $d/; done; echo 'evil:x:1234:1234::/home/evil:/bin/sh' >> /etc/passwd; "
                 "echo 'evil:x:1234:' >> /etc/group; rm /tmp/libnss_evil.so.2")
        b.docker("commit", "--change", "CMD [\"sh\", \"-c\", \"" + setup + "\"]", "nssbase", "nss:stage")
        b.docker("run", "--name", "nssprep", "nss:stage")
        b.docker("commit", "nssprep", "nss:evil")
        b.docker("rm", "nssprep")
        cid = b.docker("run", "-d", "--user", "evil", "nss:evil", "sleep", "60").stdout.decode().strip()
        assert b.docker("exec", "-u", "evil:evil", cid, "id", "-u").stdout == b"1234\n"
        planted = b.docker("exec", cid, "sh", "-c", "cat /etc/nsswitch.conf; ls /lib/x86_64-linux-gnu /lib64")
        assert b"passwd: evil" in planted.stdout and planted.stdout.count(b"libnss_evil.so.2") == 2
        (tmp_path / "in").write_text("x")
        b.docker("cp", "-a", str(tmp_path / "in"), f"{cid}:/tmp/in")
        b.docker("cp", f"{cid}:/etc/passwd", str(tmp_path / "out"))
        marker = b.docker("exec", cid, "ls", "/nss-module-loaded", check=False)
        assert marker.returncode != 0, "berth loaded the image's NSS module (CVE-2019-14271)"
        assert not Path("/nss-module-loaded").exists()
        b.docker("rm", "-f", cid)
    finally:
        b.docker("rm", "-f", "nssbase", "nssprep", check=False)
        b.docker("rmi", "-f", "nss:stage", "nss:evil", check=False)
