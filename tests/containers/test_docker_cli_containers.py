"""Containers through berthd, driven by the real docker CLI: run (attached, detached, --rm), exit codes, logs,
stop, kill, rm, ps filters, inspect, the security defaults and limits, and the bad paths."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import _mounts_under

pytestmark = pytest.mark.root
LOOP = "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)
        assert _mounts_under(str(daemon.root / "containers")) == []


def run(b: PrivateBerthd, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return b.docker("run", *args, input=input, check=False)


def test_run_prints_output_and_propagates_the_exit_code(b: PrivateBerthd) -> None:
    proc = run(b, "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, b"out\n", b"err\n")
    assert b.docker("ps", "-aq").stdout == b""   # --rm removed it


def test_stdin_env_workdir_user_entrypoint(b: PrivateBerthd) -> None:
    assert run(b, "--rm", "-i", "busybox", "cat", input=b"through stdin\n").stdout == b"through stdin\n"
    proc = run(b, "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "busybox", "sh", "-c", 'echo $A $(pwd) $(id -u)')
    assert proc.stdout == b"1 /tmp 65534\n"
    assert run(b, "--rm", "--entrypoint", "echo", "busybox", "entry").stdout == b"entry\n"
    assert run(b, "--rm", "--hostname", "box", "busybox", "hostname").stdout == b"box\n"


def test_a_missing_command_exits_127_and_leaves_nothing(b: PrivateBerthd) -> None:
    proc = run(b, "--rm", "busybox", "nosuchcmd")
    assert proc.returncode == 127
    assert b"executable file not found" in proc.stderr
    assert b.docker("ps", "-aq").stdout == b""


def test_detached_logs_stop_and_remove(b: PrivateBerthd) -> None:
    cid = run(b, "-d", "--name", "ticker", "--label", "team=berth", "busybox", "sh", "-c", LOOP).stdout.decode().strip()
    assert len(cid) == 64
    time.sleep(0.6)
    assert b.docker("logs", "--tail", "2", "ticker").stdout == b"tick\ntick\n"
    follow = subprocess.Popen(["/usr/local/bin/docker", "-H", b.host, "logs", "-f", "--tail", "1", "ticker"],
                              stdout=subprocess.PIPE)
    assert follow.stdout is not None
    assert follow.stdout.readline() == b"tick\n" and follow.stdout.readline() == b"tick\n"
    ps = b.docker("ps", "--filter", "label=team=berth", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert ps.startswith("ticker Up ")
    started = time.monotonic()
    b.docker("stop", "ticker")
    assert time.monotonic() - started < 5       # the TERM trap ends it: no 10 s wait for SIGKILL
    assert follow.wait(timeout=10) == 0         # logs -f ends when the container does
    state = json.loads(b.docker("inspect", "ticker").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0 and not state["Running"]
    assert b.docker("ps", "-q").stdout == b""
    assert b.docker("ps", "-aq", "--filter", "status=exited", "--filter", "name=ticker").stdout.decode().strip() == \
        cid[:12]
    b.docker("rm", "ticker")
    assert b.docker("ps", "-aq").stdout == b""


def test_removing_a_running_container_needs_force(b: PrivateBerthd) -> None:
    run(b, "-d", "--name", "busy", "busybox", "sleep", "100")
    proc = b.docker("rm", "busy", check=False)
    assert proc.returncode == 1 and b"You cannot remove a running container" in proc.stderr
    conflict = run(b, "-d", "--name", "busy", "busybox", "true")
    assert conflict.returncode == 125 and b'The container name "/busy" is already in use' in conflict.stderr
    b.docker("rm", "-f", "busy")
    assert b.docker("ps", "-aq").stdout == b""


def test_kill_and_wait_report_the_signal(b: PrivateBerthd) -> None:
    cid = run(b, "-d", "busybox", "sleep", "100").stdout.decode().strip()
    waiter = subprocess.Popen(["/usr/local/bin/docker", "-H", b.host, "wait", cid], stdout=subprocess.PIPE)
    b.docker("kill", cid)
    assert waiter.communicate(timeout=10)[0] == b"137\n"
    assert json.loads(b.docker("inspect", cid).stdout)[0]["State"]["ExitCode"] == 137
    b.docker("rm", cid)


def test_inspect_shows_config_and_host_config(b: PrivateBerthd) -> None:
    cid = run(b, "-d", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "--restart", "no", "-e", "X=y",
              "busybox", "sleep", "100").stdout.decode().strip()
    doc = json.loads(b.docker("inspect", cid).stdout)[0]
    assert doc["Config"]["Cmd"] == ["sleep", "100"] and "X=y" in doc["Config"]["Env"]
    assert doc["HostConfig"]["Memory"] == 64 * 1024 * 1024 and doc["HostConfig"]["NanoCpus"] == 500_000_000
    assert doc["HostConfig"]["PidsLimit"] == 50
    assert doc["State"]["Running"] and doc["State"]["Pid"] > 0
    assert doc["Path"] == "sleep" and doc["Args"] == ["100"]
    b.docker("rm", "-f", cid)


def test_default_security_matches_docker(b: PrivateBerthd) -> None:
    status = run(b, "--rm", "busybox", "cat", "/proc/self/status").stdout.decode()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == "00000000a80425fb" == fields["CapBnd"].strip()
    assert fields["CapInh"].strip() == fields["CapAmb"].strip() == "0000000000000000"
    assert fields["Seccomp"].strip() == "2" and fields["NoNewPrivs"].strip() == "0"
    dropped = run(b, "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status").stdout
    assert dropped.split() == [b"CapEff:", b"0000000000000000"]
    refused = run(b, "--rm", "busybox", "unshare", "-r", "true")
    assert refused.returncode != 0
    ro = run(b, "--rm", "--read-only", "busybox", "touch", "/x")
    assert ro.returncode == 1 and b"Read-only file system" in ro.stderr
    assert run(b, "--rm", "busybox", "cat", "/proc/kcore").stdout == b""   # masked


def test_memory_limit_kills_and_reports_oom(b: PrivateBerthd) -> None:
    proc = run(b, "--name", "oom", "--memory", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
               "head -c 200m /dev/zero | tail > /dev/null")
    doc = json.loads(b.docker("inspect", "oom").stdout)[0]["State"]
    assert proc.returncode == 137 or doc["OOMKilled"]
    assert doc["OOMKilled"] is True
    b.docker("rm", "oom")


def test_pids_limit_stops_a_fork_bomb(b: PrivateBerthd) -> None:
    proc = run(b, "--rm", "--pids-limit", "20", "busybox", "sh", "-c",
               "for i in $(seq 60); do sleep 5 & done; echo all forked")
    assert proc.returncode != 0 and b"can't fork" in proc.stderr and b"all forked" not in proc.stdout
    assert subprocess.run(["true"]).returncode == 0     # the host still forks


@pytest.mark.parametrize("args,fragment", [
    (("--restart", "sometimes"), b"invalid restart policy"),
    (("--cap-add", "NOT_A_CAP"), b"unknown capability"),
    (("--ulimit", "nofile=10:5"), b"soft limit must be less than or equal to hard limit"),
    (("--security-opt", "foo=bar"), b"invalid --security-opt"),
])
def test_bad_options_get_dockers_errors(b: PrivateBerthd, args: tuple[str, ...], fragment: bytes) -> None:
    before = b.docker("ps", "-aq").stdout
    proc = run(b, *args, "busybox", "true")
    assert proc.returncode == 125, proc.stderr
    assert fragment in proc.stderr
    assert b.docker("ps", "-aq").stdout == before


def test_a_container_keeps_running_across_a_daemon_kill(tmp_path: object) -> None:
    with PrivateBerthd() as d:
        assert d.api("POST", "/berth/images/bootstrap?base=busybox")[0] == 200
        d.docker("run", "-d", "--name", "survivor", "busybox", "sh", "-c", LOOP)
        d.docker("run", "-d", "--name", "quitter", "busybox", "sh", "-c", "sleep 1; exit 7")
        d.docker("run", "-d", "--rm", "--name", "vanisher", "busybox", "sh", "-c", "sleep 1")
        pid = json.loads(d.docker("inspect", "survivor").stdout)[0]["State"]["Pid"]
        d.kill()
        time.sleep(2)               # quitter and vanisher exit while berthd is down
        d.start()
        doc = json.loads(d.docker("inspect", "survivor").stdout)[0]["State"]
        assert doc["Running"] and doc["Pid"] == pid
        quitter = json.loads(d.docker("inspect", "quitter").stdout)[0]["State"]
        assert quitter["Status"] == "exited" and quitter["ExitCode"] == 7
        assert d.docker("inspect", "vanisher", check=False).returncode == 1
        logs = d.docker("logs", "survivor").stdout.splitlines()
        time.sleep(0.5)
        assert len(d.docker("logs", "survivor").stdout.splitlines()) > len(logs)   # still logging
        d.docker("stop", "survivor")
        assert json.loads(d.docker("inspect", "survivor").stdout)[0]["State"]["ExitCode"] == 0
        for name in ("survivor", "quitter"):
            d.docker("rm", name)
        assert _mounts_under(str(d.root / "containers")) == []


def test_exec_runs_in_the_container_with_its_exit_code(b: PrivateBerthd) -> None:
    cid = run(b, "-d", "--name", "host-of-exec", "-e", "FROM_RUN=1", "busybox", "sleep", "100").stdout.decode().strip()
    proc = b.docker("exec", "host-of-exec", "sh", "-c", "echo $FROM_RUN $HOSTNAME; echo err >&2; exit 2", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, f"1 {cid[:12]}\n".encode(), b"err\n")
    assert b.docker("exec", "-i", "host-of-exec", "cat", input=b"piped\n").stdout == b"piped\n"
    proc = b.docker("exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", "host-of-exec", "sh", "-c",
                    "echo $X $(pwd) $(id -u)")
    assert proc.stdout == b"1 /tmp 65534\n"
    # the exec shares the container's pid namespace: sleep is pid 1 there
    assert b.docker("exec", "host-of-exec", "cat", "/proc/1/cmdline").stdout == b"sleep\x00100\x00"
    missing = b.docker("exec", "host-of-exec", "nosuch", check=False)
    assert missing.returncode == 126 and b"executable file not found" in missing.stderr
    tty = subprocess.run(["script", "-qec", f"/usr/local/bin/docker -H {b.host} exec -it host-of-exec sh -c 'tty; "
                          "exit 5'", "/dev/null"], capture_output=True)
    assert tty.returncode == 5 and b"/dev/pts/" in tty.stdout
    b.docker("rm", "-f", "host-of-exec")
    stopped = b.docker("exec", cid, "true", check=False)
    assert stopped.returncode == 1 and b"No such container" in stopped.stderr


def test_network_none_has_loopback_up_and_host_sees_the_host(b: PrivateBerthd) -> None:
    own = run(b, "--rm", "--network", "none", "busybox", "ip", "-o", "addr").stdout.decode()
    assert "lo" in own and "127.0.0.1/8" in own and "eth0" not in own
    def names(text: str) -> set[str]:
        return {line.split(":")[1].strip().split("@")[0] for line in text.splitlines() if line.count(":") >= 2}

    # veths come and go with other containers: compare the links present before and after the run
    before = names(subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout)
    seen = names(run(b, "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout.decode())
    after = names(subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout)
    assert before & after <= seen and "lo" in seen and len(seen) > 1
    assert _mounts_under(str(b.exec_root / "netns")) == []     # torn down with each container


def test_restart_policies(b: PrivateBerthd) -> None:
    run(b, "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = json.loads(b.docker("inspect", "flaky").stdout)[0]
        if state["State"]["Status"] == "exited" and state["RestartCount"] == 2:
            break
        time.sleep(0.2)
    assert state["RestartCount"] == 2 and state["State"]["ExitCode"] == 3
    run(b, "-d", "--name", "fine", "--restart", "on-failure", "busybox", "true")
    time.sleep(1)
    assert json.loads(b.docker("inspect", "fine").stdout)[0]["RestartCount"] == 0
    run(b, "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 1")
    time.sleep(2.5)
    doc = json.loads(b.docker("inspect", "always").stdout)[0]
    assert doc["RestartCount"] >= 2 and doc["State"]["Status"] in ("running", "restarting")
    b.docker("stop", "always")
    time.sleep(1)
    doc = json.loads(b.docker("inspect", "always").stdout)[0]
    assert doc["State"]["Status"] == "exited"
    count = doc["RestartCount"]
    time.sleep(1)
    assert json.loads(b.docker("inspect", "always").stdout)[0]["RestartCount"] == count   # stopped stays stopped
    for name in ("flaky", "fine", "always"):
        b.docker("rm", "-f", name)


def test_top_diff_commit_and_export(b: PrivateBerthd, tmp_path: object) -> None:
    run(b, "-d", "--name", "worked", "busybox", "sh", "-c", "echo new > /added; rm /bin/vi; echo x >> /etc/passwd; "
        "exec sleep 100")
    time.sleep(0.5)
    top = b.docker("top", "worked").stdout.decode().splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and "sleep 100" in top[1]
    diff = b.docker("diff", "worked").stdout.decode().splitlines()
    assert "A /added" in diff and "D /bin/vi" in diff and "C /etc/passwd" in diff
    b.docker("commit", "-c", "ENV COMMITTED=yes", "-m", "from a test", "worked", "committed:1")
    out = run(b, "--rm", "committed:1", "sh", "-c", "cat /added; echo $COMMITTED; test -e /bin/vi || echo gone")
    assert out.stdout == b"new\nyes\ngone\n"
    history = b.docker("history", "--format", "{{.Comment}}", "committed:1").stdout.decode().splitlines()
    assert history[0] == "from a test"
    tar = b.docker("export", "worked").stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as exported:
        names = exported.getnames()
    assert "added" in names and "bin/sh" in names and "bin/vi" not in names
    b.docker("rm", "-f", "worked")
    base = b.docker("image", "inspect", "--format", "{{.Id}}", "busybox").stdout.decode().strip()
    refused = b.docker("rmi", base[7:19], check=False)      # committed:1 is its child
    assert refused.returncode == 1 and b"image has dependent child images" in refused.stderr
    b.docker("rmi", "committed:1")
    run(b, "--name", "done", "busybox", "true")
    assert b"done" in b.docker("ps", "-a", "--format", "{{.Names}}").stdout
    pruned = b.docker("container", "prune", "-f").stdout.decode()
    assert "Deleted Containers" in pruned and b"done" not in b.docker("ps", "-a", "--format", "{{.Names}}").stdout


def _bounding_set(status: str) -> int:
    return next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapBnd:"))


def test_privileged_gets_every_capability_berthd_holds(b: PrivateBerthd) -> None:
    """--privileged (and exec --privileged) grant what berthd's own bounding set holds: on a host that withholds
    some (as this sandbox withholds CAP_SYS_RESOURCE) the start must not fail asking for more."""
    held = _bounding_set(Path("/proc/self/status").read_text())
    proc = run(b, "--rm", "--privileged", "busybox", "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert _bounding_set(proc.stdout.decode()) == held & ((1 << 41) - 1)
    default = run(b, "--rm", "busybox", "cat", "/proc/self/status")
    assert _bounding_set(default.stdout.decode()) == 0xA80425FB              # Docker's 14 default capabilities
    run(b, "-d", "--name", "priv-exec", "busybox", "sleep", "30")
    try:
        ex = b.docker("exec", "--privileged", "priv-exec", "cat", "/proc/self/status", check=False)
        assert ex.returncode == 0, ex.stderr
        assert _bounding_set(ex.stdout.decode()) == held & ((1 << 41) - 1)
    finally:
        b.docker("rm", "-f", "priv-exec")


def test_stop_ends_restarts_whatever_moment_it_lands_in(b: PrivateBerthd) -> None:
    """A stop can land while the container runs, while it waits out its back-off, or while the back-off's start is
    under way: each time it must end up exited and stay so."""
    import random
    rng = random.Random(7)
    for i in range(12):
        name = f"bouncy{i}"
        run(b, "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "sleep 0.05")
        time.sleep(rng.uniform(0.0, 0.4))
        b.docker("stop", "-t", "1", name)
        doc = json.loads(b.docker("inspect", name).stdout)[0]
        assert doc["State"]["Status"] == "exited", (i, doc["State"])
        time.sleep(0.3)
        again = json.loads(b.docker("inspect", name).stdout)[0]
        assert (again["State"]["Status"], again["RestartCount"]) == ("exited", doc["RestartCount"]), i
        b.docker("rm", "-f", name)
