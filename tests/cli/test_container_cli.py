"""berth's container commands against the real docker CLI, both driving the same private berthd: the same stdout,
stderr (with "berth" read as "docker") and exit code, ids and times normalised; and the exit codes 125/126/127.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import peers
from tests.berthd import PrivateBerthd

seeded_daemon = peers.seeded_daemon

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def bd() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def berth(b: PrivateBerthd, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "BERTH_NO_AUTOSTART": "1"}
    return subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", b.host, *args], input=input,
                          capture_output=True, env=env, timeout=120)


def docker(b: PrivateBerthd, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return b.docker(*args, input=input, check=False)


_IDS = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
_AGO = re.compile(r"(Less than a second|About a minute|About an hour|an hour|\d+ (second|minute|hour)s?) ago")
_UP = re.compile(r"Up (Less than a second|About a minute|\d+ seconds?|\d+ minutes)")


def norm(text: bytes, berth_side: bool = False) -> str:
    out = text.decode(errors="replace")
    if berth_side:
        out = re.sub(r"(?<![/\w-])berth(?=[ :'\"])", "docker", out)
    out = _IDS.sub("<id>", out)
    out = _AGO.sub("<ago>", out)
    out = _UP.sub("Up <t>", out)
    return re.sub(r" +", " ", out)   # column widths follow the normalised cells


def same(b: PrivateBerthd, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run through both CLIs; stdout, stderr and exit code must match (normalised). Returns berth's result."""
    d = docker(b, *args, input=input)
    o = berth(b, *args, input=input)
    assert (o.returncode, norm(o.stdout, True), norm(o.stderr, True)) == \
        (d.returncode, norm(d.stdout), norm(d.stderr)), args
    return o


def test_run_rm_prints_output_and_exits_with_the_container_code(bd: PrivateBerthd) -> None:
    assert berth(bd, "run", "--rm", "busybox", "echo", "hi").stdout == b"hi\n"
    o = same(bd, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (o.returncode, o.stdout, o.stderr) == (3, b"out\n", b"err\n")
    assert same(bd, "run", "--rm", "-i", "busybox", "cat", input=b"through stdin\n").stdout == b"through stdin\n"
    o = same(bd, "run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "--entrypoint", "sh", "busybox", "-c",
             "echo $A $(pwd) $(id -u)")
    assert o.stdout == b"1 /tmp 65534\n"
    assert berth(bd, "ps", "-aq").stdout == b""


def test_exit_codes_125_126_127(bd: PrivateBerthd) -> None:
    assert same(bd, "run", "--rm", "busybox", "nosuchcmd").returncode == 127
    assert same(bd, "run", "--rm", "busybox", "/no/such/file").returncode == 127
    assert same(bd, "run", "--rm", "busybox", "/etc").returncode == 126
    assert same(bd, "run", "--rm", "busybox", "/etc/passwd").returncode == 126
    assert same(bd, "run", "--rm", "-m", "12x", "busybox", "true").returncode == 125
    assert same(bd, "run", "--rm", "-p", "70000:80", "busybox", "true").returncode == 125
    assert same(bd, "run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true").returncode == 125
    assert same(bd, "run", "--rm", "--restart", "always", "busybox", "true").returncode == 125
    assert same(bd, "run", "--restart", "bogus", "busybox", "true").returncode == 125
    assert same(bd, "run", "--rm", "--ulimit", "nofile=x", "busybox", "true").returncode == 125
    berth(bd, "create", "--name", "taken", "busybox", "true")
    o = same(bd, "run", "--name", "taken", "busybox", "true")
    assert o.returncode == 125 and b"Conflict" in o.stderr
    assert berth(bd, "rm", "taken").stdout == b"taken\n"
    assert berth(bd, "ps", "-aq").stdout == b""


def test_a_missing_image_is_reported_like_docker(bd: PrivateBerthd) -> None:
    o = berth(bd, "run", "--rm", "--pull", "never", "nosuchimage:1", "true")
    d = docker(bd, "run", "--rm", "--pull", "never", "nosuchimage:1", "true")
    assert (o.returncode, norm(o.stderr, True)) == (d.returncode, norm(d.stderr)) and o.returncode == 125
    # missing locally: docker says so, then pulls (which fails here: no registry is reachable)
    o = berth(bd, "run", "--rm", "127.0.0.1:9/nosuch:1", "true")
    assert o.stderr.startswith(b"Unable to find image '127.0.0.1:9/nosuch:1' locally\n"), o.stderr
    assert o.returncode == 125


def test_detached_lifecycle_ps_logs_stop_wait_rm(bd: PrivateBerthd) -> None:
    loop = "trap 'exit 7' TERM; echo started; while true; do sleep 0.1; done"
    cid = berth(bd, "run", "-d", "--name", "life", "-l", "team=blue", "busybox", "sh", "-c", loop).stdout.decode()
    assert re.fullmatch(r"[0-9a-f]{64}\n", cid)
    time.sleep(0.5)
    same(bd, "ps")
    same(bd, "ps", "-a", "--no-trunc")
    same(bd, "ps", "-q")
    same(bd, "ps", "--filter", "label=team=blue", "--format", "{{.Names}} {{.Status}} {{.Labels}}")
    same(bd, "ps", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.State}}")
    same(bd, "ps", "--format", 'table {{.Names}}\\t{{.Label "team"}}\\t{{.Label "none"}}')
    same(bd, "ps", "-n", "1", "--format", "json")
    same(bd, "logs", "life")
    same(bd, "logs", "-t", "--tail", "1", "life")
    top_b, top_d = berth(bd, "top", "life").stdout, docker(bd, "top", "life").stdout
    assert top_b.splitlines()[:2] == top_d.splitlines()[:2]   # the shell; its `sleep` children come and go
    same(bd, "port", "life")
    same(bd, "inspect", "--format", "{{.Name}} {{.State.Status}} {{.Config.Labels}}", "life")
    same(bd, "container", "inspect", "-f", "{{.State.Running}}", "life")
    same(bd, "inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "life")
    same(bd, "inspect", "--type", "image", "life")
    assert berth(bd, "pause", "life").stdout == b"life\n"
    same(bd, "ps", "--format", "{{.Status}}")
    same(bd, "pause", "life")   # already paused: the same error
    assert berth(bd, "unpause", "life").stdout == b"life\n"
    assert berth(bd, "stop", "life").stdout == b"life\n"
    assert same(bd, "wait", "life").stdout == b"7\n"
    same(bd, "ps", "-a")
    same(bd, "ps", "-a", "--filter", "exited=7", "-q")
    same(bd, "ps", "-l", "--format", "{{.Names}} {{.State}}")   # the latest, exited or not
    same(bd, "ps", "-n", "2", "-s")
    assert berth(bd, "rename", "life", "life2").returncode == 0
    same(bd, "diff", "life2")
    assert berth(bd, "rm", "life2").stdout == b"life2\n"
    same(bd, "rm", "life2")
    same(bd, "rm", "-f", "life2")
    same(bd, "stop", "nosuch", "alsonot")
    same(bd, "kill", "nosuch")
    same(bd, "logs", "nosuch")
    same(bd, "wait", "nosuch")


def test_logs_follow_ends_with_the_container_and_demuxes_streams(bd: PrivateBerthd) -> None:
    berth(bd, "run", "-d", "--name", "talker", "busybox", "sh", "-c",
          "echo one; echo two >&2; sleep 1; echo three")
    o = berth(bd, "logs", "-f", "talker")
    assert (o.returncode, o.stdout, o.stderr) == (0, b"one\nthree\n", b"two\n")
    berth(bd, "rm", "talker")


def test_kill_with_a_signal_and_restart(bd: PrivateBerthd) -> None:
    berth(bd, "run", "-d", "--name", "sig", "busybox", "sh", "-c", "trap 'exit 5' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    assert berth(bd, "kill", "-s", "USR1", "sig").stdout == b"sig\n"
    assert berth(bd, "wait", "sig").stdout == b"5\n"
    assert berth(bd, "restart", "-t", "1", "sig").stdout == b"sig\n"
    assert berth(bd, "inspect", "-f", "{{.State.Running}}", "sig").stdout == b"true\n"
    assert berth(bd, "rm", "-f", "sig").stdout == b"sig\n"


def test_create_then_start_attached(bd: PrivateBerthd) -> None:
    cid = berth(bd, "create", "--name", "later", "busybox", "sh", "-c", "echo from-start; exit 4").stdout.strip()
    assert len(cid) == 64
    o = berth(bd, "start", "-a", "later")
    assert (o.returncode, o.stdout) == (4, b"from-start\n")
    assert berth(bd, "start", "later").stdout == b"later\n"
    assert berth(bd, "wait", "later").stdout == b"4\n"
    same(bd, "start", "nosuch")
    berth(bd, "rm", "later")


def test_commit_export_and_container_prune(bd: PrivateBerthd) -> None:
    berth(bd, "run", "--name", "builder", "busybox", "sh", "-c", "echo made > /made.txt")
    o = berth(bd, "commit", "-m", "msg", "-c", "ENV X=1", "builder", "committed:1")
    assert o.returncode == 0 and o.stdout.startswith(b"sha256:"), o.stderr
    assert berth(bd, "run", "--rm", "committed:1", "sh", "-c", "cat /made.txt; echo $X").stdout == b"made\n1\n"
    exported = berth(bd, "export", "builder")
    assert exported.returncode == 0 and b"made.txt" in exported.stdout
    o = berth(bd, "container", "prune", "-f")
    assert o.stdout.startswith(b"Deleted Containers:\n") and o.stdout.endswith(b"Total reclaimed space: 0B\n")
    assert berth(bd, "ps", "-aq").stdout == b""
    berth(bd, "rmi", "committed:1")


def test_flag_errors_match_docker(bd: PrivateBerthd) -> None:
    same(bd, "run")
    same(bd, "run", "--nosuchflag", "busybox")
    same(bd, "run", "--cpus", "abc", "busybox")
    same(bd, "ps", "--filter", "nokey")
    same(bd, "rename", "onlyone")


def test_exec_streams_exit_codes_and_errors(bd: PrivateBerthd) -> None:
    berth(bd, "run", "-d", "--name", "execbox", "busybox", "sleep", "600")
    o = same(bd, "exec", "execbox", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (o.returncode, o.stdout, o.stderr) == (4, b"out\n", b"err\n")
    assert same(bd, "exec", "-e", "A=2", "-w", "/tmp", "-u", "nobody", "execbox", "sh", "-c",
                "echo $A $(pwd) $(id -u)").stdout == b"2 /tmp 65534\n"
    assert same(bd, "exec", "-i", "execbox", "cat", input=b"to exec\n").stdout == b"to exec\n"
    assert berth(bd, "exec", "-d", "execbox", "touch", "/tmp/detached").returncode == 0
    time.sleep(0.3)
    assert berth(bd, "exec", "execbox", "ls", "/tmp/detached").stdout == b"/tmp/detached\n"
    assert same(bd, "exec", "execbox", "nosuchcmd").returncode in (126, 127)   # the daemon's code, both alike
    same(bd, "exec", "nosuch", "true")
    same(bd, "exec", "execbox")
    berth(bd, "rm", "-f", "execbox")
    berth(bd, "create", "--name", "stopped", "busybox", "true")
    same(bd, "exec", "stopped", "true")
    berth(bd, "rm", "stopped")


def test_cp_both_ways_and_tar_streams(bd: PrivateBerthd, tmp_path: Path) -> None:
    berth(bd, "run", "-d", "--name", "cpbox", "busybox", "sleep", "600")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("one\n")
    (tmp_path / "d" / "sub" / "b.txt").write_text("two\n")
    (tmp_path / "f.txt").write_text("file\n")
    assert berth(bd, "cp", str(tmp_path / "f.txt"), "cpbox:/tmp/g.txt").returncode == 0
    assert berth(bd, "exec", "cpbox", "cat", "/tmp/g.txt").stdout == b"file\n"
    assert berth(bd, "cp", str(tmp_path / "d"), "cpbox:/tmp").returncode == 0
    assert berth(bd, "cp", str(tmp_path / "d"), "cpbox:/tmp/renamed").returncode == 0
    listing = berth(bd, "exec", "cpbox", "find", "/tmp/d", "/tmp/renamed").stdout.decode().split()
    assert sorted(listing) == sorted(["/tmp/d", "/tmp/d/a.txt", "/tmp/d/sub", "/tmp/d/sub/b.txt", "/tmp/renamed",
                                      "/tmp/renamed/a.txt", "/tmp/renamed/sub", "/tmp/renamed/sub/b.txt"])
    assert berth(bd, "cp", "cpbox:/tmp/renamed", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "two\n"
    (tmp_path / "into").mkdir()
    assert berth(bd, "cp", "cpbox:/tmp/g.txt", str(tmp_path / "into")).returncode == 0
    assert (tmp_path / "into" / "g.txt").read_text() == "file\n"
    berth(bd, "exec", "cpbox", "ln", "-s", "/etc/passwd", "/tmp/pw")
    assert berth(bd, "cp", "-L", "cpbox:/tmp/pw", str(tmp_path / "into")).returncode == 0
    followed = tmp_path / "into" / "pw"
    assert not followed.is_symlink() and followed.read_text().startswith("root:")
    assert berth(bd, "cp", "cpbox:/tmp/pw", str(tmp_path / "link")).returncode == 0
    assert os.readlink(tmp_path / "link") == "/etc/passwd"
    streamed = berth(bd, "cp", "cpbox:/etc/passwd", "-")
    with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:
        assert tar.getnames() == ["passwd"]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"stdin\n"))
    assert berth(bd, "cp", "-", "cpbox:/root", input=archive.getvalue()).returncode == 0
    assert berth(bd, "exec", "cpbox", "cat", "/root/from-stdin.txt").stdout == b"stdin\n"
    same(bd, "cp", "cpbox:/nope", str(tmp_path / "x"))
    same(bd, "cp", str(tmp_path / "nope"), "cpbox:/tmp")
    same(bd, "cp", str(tmp_path), str(tmp_path))
    same(bd, "cp", "a:/x", "b:/y")
    berth(bd, "rm", "-f", "cpbox")


def test_events_df_and_stats(bd: PrivateBerthd) -> None:
    since = str(int(time.time()) - 1)
    berth(bd, "run", "--rm", "--name", "evented", "busybox", "true")
    until = str(int(time.time()) + 1)
    time.sleep(1.2)
    args = ("events", "--since", since, "--until", until, "--filter", "container=evented")
    o, d = berth(bd, *args), docker(bd, *args)
    assert o.returncode == d.returncode == 0
    assert norm(o.stdout) == norm(d.stdout) and b"container start" in o.stdout
    fmt = ("events", "--since", since, "--until", until, "--filter", "event=die", "--filter", "container=evented",
           "--format", "{{.Action}} "
           "{{.Actor.Attributes.name}}")
    assert berth(bd, *fmt).stdout == docker(bd, *fmt).stdout == b"die evented\n"
    same(bd, "system", "df")
    same(bd, "system", "df", "--format", "{{.Type}}: {{.TotalCount}}")
    same(bd, "system", "df", "-v")
    berth(bd, "run", "-d", "--name", "statbox", "busybox", "sleep", "600")
    o = berth(bd, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}")
    assert o.stdout == b"statbox 1\n", o.stderr
    header = berth(bd, "stats", "--no-stream", "statbox").stdout.splitlines()[0]
    assert header == docker(bd, "stats", "--no-stream", "statbox").stdout.splitlines()[0]
    berth(bd, "rm", "-f", "statbox")


def same_at(host: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "BERTH_NO_AUTOSTART": "1"}
    d = peers.docker(host, *args, input=input, check=False)
    o = subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", host, *args], input=input,
                       capture_output=True, env=env, timeout=120)
    assert (o.returncode, norm(o.stdout, True), norm(o.stderr, True)) == \
        (d.returncode, norm(d.stdout), norm(d.stderr)), args
    return o


@pytest.mark.interop
@pytest.mark.slow
def test_against_a_real_dockerd(seeded_daemon: peers.Daemon) -> None:
    host, image = seeded_daemon.host, seeded_daemon.images.busybox
    o = same_at(host, "run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (o.returncode, o.stdout, o.stderr) == (3, b"out\n", b"err\n")
    assert same_at(host, "run", "--rm", "-i", image, "cat", input=b"piped\n").stdout == b"piped\n"
    assert same_at(host, "run", "--rm", image, "nosuchcmd").returncode == 127
    assert same_at(host, "run", "--rm", image, "/etc").returncode == 126
    assert same_at(host, "run", "--rm", "--cap-add", "bogus", image, "true").returncode == 125
    name = "berth-cli-interop"
    subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", host, "run", "-d", "--name", name, "-l", "k=v",
                    image, "sh", "-c", "trap 'exit 7' TERM; echo started; while true; do sleep 0.1; done"],
                   check=True, capture_output=True)
    try:
        time.sleep(0.5)
        same_at(host, "ps", "--filter", f"name={name}")
        same_at(host, "ps", "--filter", f"name={name}", "--format", "{{json .}}")
        same_at(host, "logs", name)
        same_at(host, "ps", "-l", "--format", "{{.Names}} {{.State}}")
        same_at(host, "inspect", "-f", "{{.Name}} {{.State.Status}} {{.Config.Labels}} {{.HostConfig.RestartPolicy}}",
                name)
        o = same_at(host, "exec", name, "sh", "-c", "echo in-exec; exit 5")
        assert (o.returncode, o.stdout) == (5, b"in-exec\n")
        same_at(host, "port", name)
        same_at(host, "diff", name)
    finally:
        peers.docker(host, "stop", name, check=False)
        assert same_at(host, "wait", name).stdout == b"7\n"
        peers.docker(host, "rm", name, check=False)
    same_at(host, "rm", name)


def test_update_and_published_ports(bd: PrivateBerthd) -> None:
    berth(bd, "run", "-d", "--name", "upd", "-P", "--expose", "80", "-p", "127.0.0.1::81", "busybox", "sleep", "600")
    try:
        assert berth(bd, "update", "--memory", "64m", "--memory-swap", "128m", "--restart", "on-failure:2",
                     "upd").stdout == b"upd\n"
        o = berth(bd, "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}} "
                  "{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "upd")
        assert o.stdout == f"{64 << 20} on-failure 2\n".encode(), o.stderr
        same(bd, "update", "upd")
        same(bd, "update", "--memory", "12x", "upd")
        same(bd, "port", "upd")
        same(bd, "port", "upd", "81")
        same(bd, "port", "upd", "82/udp")
        same(bd, "ps", "--filter", "name=upd", "--format", "{{.Ports}}")
    finally:
        berth(bd, "rm", "-f", "upd")


def test_system_prune_reports_what_went(bd: PrivateBerthd) -> None:
    cid = berth(bd, "create", "busybox", "true").stdout.strip()
    net = berth(bd, "network", "create", "prunable-net").stdout.strip()
    assert len(net) == 64
    o = berth(bd, "system", "prune", input=b"n\n")
    assert o.stdout.startswith(b"WARNING! This will remove:\n  - all stopped containers\n")
    assert o.stderr == b"system prune has been cancelled\n"
    o = berth(bd, "system", "prune", "-f")
    assert o.returncode == 0, o.stderr
    assert f"Deleted Containers:\n{cid.decode()}\n\n".encode() in o.stdout
    assert b"Deleted Networks:\nprunable-net\n\n" in o.stdout
    assert o.stdout.splitlines()[-1].startswith(b"Total reclaimed space: ")
    assert berth(bd, "ps", "-aq").stdout == b""


def test_run_pulls_a_missing_image_like_docker(bd: PrivateBerthd, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    registry = subprocess.Popen([sys.executable, "-m", "berth.cli.main", "registry", "serve", "--listen",
                                 f"127.0.0.1:{port}", "--root", str(tmp_path / "registry")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ref = f"127.0.0.1:{port}/team/bb:1"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        assert berth(bd, "tag", "busybox", ref).returncode == 0
        assert berth(bd, "push", ref).returncode == 0
        assert berth(bd, "rmi", ref).returncode == 0
        o = berth(bd, "run", "--rm", ref, "echo", "pulled")
        assert (o.returncode, o.stdout) == (0, b"pulled\n"), o.stderr
        assert o.stderr.startswith(f"Unable to find image '{ref}' locally\n".encode())
        assert b"Status: Downloaded newer image for " + ref.encode() in o.stderr
        berth(bd, "rmi", ref)
        d = docker(bd, "run", "--rm", ref, "echo", "pulled")
        assert norm(d.stderr).splitlines()[0] == norm(o.stderr, True).splitlines()[0]
        o = berth(bd, "run", "--rm", "-q", "--pull", "always", ref, "echo", "again")
        assert (o.returncode, o.stdout, o.stderr) == (0, b"again\n", b"")
        berth(bd, "rmi", ref)
        same(bd, "run", "--rm", "--pull", "never", ref, "true")
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        berth(bd, "rmi", ref)


def test_run_flags_reach_the_container(bd: PrivateBerthd, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n\nSPACED=a b\n")
    label_file = tmp_path / "labels"
    label_file.write_text("from.file=1\n")
    cidfile = tmp_path / "cid"
    o = same(bd, "run", "--rm", "--env-file", str(env_file), "busybox", "sh", "-c", 'echo "$FROM_FILE|$SPACED"')
    assert o.stdout == b"yes|a b\n"
    o = berth(bd, "run", "--cidfile", str(cidfile), "--label-file", str(label_file), "--name", "flagged", "busybox",
              "true")
    assert o.returncode == 0 and len(cidfile.read_text()) == 64
    assert berth(bd, "inspect", "-f", '{{index .Config.Labels "from.file"}}', "flagged").stdout == b"1\n"
    same(bd, "run", "--cidfile", str(cidfile), "busybox", "true")
    berth(bd, "rm", "flagged")
    o = same(bd, "run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo seen; echo unseen >&2")
    assert (o.stdout, o.stderr) == (b"seen\n", b"")
    o = berth(bd, "run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
              "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs-ok")
    assert o.stdout == b"ro\ntmpfs-ok\n", o.stderr
    o = berth(bd, "run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert o.returncode == 0 and not o.stdout.startswith(b"sh "), o.stdout
    berth(bd, "run", "-d", "--name", "healthy", "--health-cmd", "true", "--health-interval", "200ms", "busybox",
          "sleep", "600")
    try:
        deadline = time.monotonic() + 15
        status = b""
        while time.monotonic() < deadline and b"(healthy)" not in status:
            time.sleep(0.2)
            status = berth(bd, "ps", "--filter", "name=healthy", "--format", "{{.Status}}").stdout
        assert b"(healthy)" in status
        same(bd, "ps", "--filter", "name=healthy", "--format", "{{.Status}}")
        same(bd, "inspect", "-f", "{{.State.Health.Status}} {{.Config.Healthcheck.Test}}", "healthy")
    finally:
        berth(bd, "rm", "-f", "healthy")
