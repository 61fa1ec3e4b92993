"""create / start / state / kill / delete / run / exec / pause / resume / ps / list through `berth-runtime`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from tests.runtime.conftest import Bundles, Runtime, container_id

pytestmark = pytest.mark.root


def _state(rt: Runtime, cid: str) -> dict[str, object]:
    out = rt("state", cid, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _wait_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _state(rt, cid)["status"] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never became {status}: {_state(rt, cid)}")


def test_run_in_the_foreground_returns_the_process_exit_code(berth: Runtime, bundles: Bundles,
                                                             request: pytest.FixtureRequest) -> None:
    bundle = bundles.make(["sh", "-c", "echo hello; echo oops >&2; exit 7"])
    out = berth("run", "--bundle", str(bundle), container_id(request))
    assert (out.returncode, out.stdout, out.stderr) == (7, "hello\n", "oops\n")
    assert berth.ids() == []  # run deletes the container after it exits


def test_a_process_killed_by_a_signal_exits_with_128_plus_the_signal(berth: Runtime, bundles: Bundles,
                                                                      request: pytest.FixtureRequest) -> None:
    # pid 1 of a pid namespace ignores signals from inside it, so the signal comes from `kill`
    cid = container_id(request)
    bundle = bundles.make(["sleep", "1000"])
    run = subprocess.Popen([*berth.argv, "--root", str(berth.root), "run", "-b", str(bundle), cid],
                           stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while berth("state", cid).returncode != 0 or _state(berth, cid)["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        berth("kill", cid, "KILL", check=True)
        assert run.wait(10) == 137
    finally:
        run.kill()
        run.wait()


def test_create_start_state_kill_delete(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                        tmp_path: Path) -> None:
    cid = container_id(request)
    marker = tmp_path / "out"
    marker.mkdir()

    def mutate(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["process"]["args"] = ["sh", "-c", "echo started > /out/started; exec sleep 1000"]
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(marker), "options": ["rbind"]})

    bundle = bundles.make([], mutate=mutate)
    pid_file = tmp_path / "pid"
    berth("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid, check=True)
    st = _state(berth, cid)
    assert st["status"] == "created" and st["id"] == cid and st["bundle"] == str(bundle)
    assert st["pid"] == int(pid_file.read_text()) and st["rootfs"] == str(bundle / "rootfs")
    assert set(st) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
    assert not (marker / "started").exists(), "the process must not run before start"
    berth("start", cid, check=True)
    _wait_status(berth, cid, "running")
    deadline = time.monotonic() + 5
    while not (marker / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (marker / "started").read_text() == "started\n"
    again = berth("start", cid)
    assert again.returncode == 1 and "running" in again.stderr
    refused = berth("delete", cid)
    assert refused.returncode == 1 and "not stopped" in refused.stderr
    berth("kill", cid, "KILL", check=True)  # pid 1 ignores TERM without a handler, in runc too
    _wait_status(berth, cid, "stopped")
    assert _state(berth, cid)["pid"] == 0
    assert berth("kill", cid).returncode == 1
    berth("delete", cid, check=True)
    gone = berth("state", cid)
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_create_refuses_an_id_in_use(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    bundle = bundles.make(["sleep", "100"])
    berth("create", "-b", str(bundle), cid, check=True)
    second = berth("create", "-b", str(bundle), cid)
    assert second.returncode == 1 and "already exists" in second.stderr
    assert _state(berth, cid)["status"] == "created"


def test_deleting_a_created_container_kills_its_init(berth: Runtime, bundles: Bundles,
                                                     request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("create", "-b", str(bundles.make(["sleep", "100"])), cid, check=True)
    pid = int(_state(berth, cid)["pid"])  # type: ignore[call-overload]
    berth("delete", cid, check=True)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_detached_run_then_force_delete(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    out = berth("run", "--detach", "-b", str(bundles.make(["sleep", "1000"])), cid)
    assert out.returncode == 0, out.stderr
    assert _state(berth, cid)["status"] == "running"
    berth("delete", "--force", cid, check=True)
    assert berth.ids() == []


def test_pause_and_resume_freeze_the_container(berth: Runtime, bundles: Bundles,
                                               request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["sh", "-c", "while :; do :; done"])), cid, check=True)
    berth("pause", cid, check=True)
    assert _state(berth, cid)["status"] == "paused"
    pid = int(_state(berth, cid)["pid"])  # type: ignore[call-overload]
    t0 = _cpu_ticks(pid)
    time.sleep(0.3)
    assert _cpu_ticks(pid) - t0 <= 1, "a paused container must not run"
    assert berth("pause", cid).returncode == 1
    berth("resume", cid, check=True)
    assert _state(berth, cid)["status"] == "running"
    deadline = time.monotonic() + 5
    while _cpu_ticks(pid) - t0 <= 5:
        assert time.monotonic() < deadline, "a resumed container must run again"
        time.sleep(0.05)
    assert berth("resume", cid).returncode == 1


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_exec_joins_the_namespaces_and_cgroup_of_the_container(berth: Runtime, bundles: Bundles,
                                                               request: pytest.FixtureRequest) -> None:
    cid = container_id(request)

    def limits(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["linux"]["resources"]["pids"] = {"limit": 42}
        cfg["linux"]["resources"]["memory"] = {"limit": 64 << 20}

    berth("run", "-d", "-b", str(bundles.make(["sleep", "1000"], mutate=limits)), cid, check=True)
    init_pid = int(_state(berth, cid)["pid"])  # type: ignore[call-overload]
    script = ("for n in pid mnt net uts ipc cgroup; do readlink /proc/self/ns/$n; done; hostname; "
              "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "grep -E 'CapEff|NoNewPrivs' /proc/self/status; ls /proc/self/fd")
    out = berth("exec", cid, "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    for i, ns in enumerate(("pid", "mnt", "net", "uts", "ipc", "cgroup")):
        assert lines[i] == os.readlink(f"/proc/{init_pid}/ns/{ns}"), ns
    assert lines[6] == "runc"
    assert lines[7:9] == ["42", str(64 << 20)]
    assert lines[9].split() == ["CapEff:", "0000000020000420"] and lines[10].split() == ["NoNewPrivs:", "1"]
    assert lines[11:14] == ["0", "1", "2"] and lines[14] in ("3", "")  # 3 is ls's own directory fd
    code = berth("exec", cid, "sh", "-c", "exit 5")
    assert code.returncode == 5
    ps = berth("ps", "--format", "json", cid, check=True)
    assert init_pid in json.loads(ps.stdout)


def test_exec_into_a_stopped_container_is_refused(berth: Runtime, bundles: Bundles,
                                                  request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["true"])), cid, check=True)
    deadline = time.monotonic() + 5
    while _state(berth, cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    out = berth("exec", cid, "true")
    assert out.returncode == 1 and "stopped" in out.stderr


def test_list_shows_containers_in_table_and_json(berth: Runtime, bundles: Bundles,
                                                 request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("create", "-b", str(bundles.make(["sleep", "100"])), cid, check=True)
    table = berth("list", check=True).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == cid and table[1].split()[2] == "created"
    listed = json.loads(berth("list", "--format", "json", check=True).stdout)
    assert [c["id"] for c in listed] == [cid]


def test_spec_writes_runc_s_example_and_refuses_to_overwrite(berth: Runtime, tmp_path: Path) -> None:
    berth("spec", "--bundle", str(tmp_path), check=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    runc = subprocess.run(["runc", "spec", "--bundle", str(tmp_path / "r")], capture_output=True) \
        if (tmp_path / "r").mkdir() is None else None
    assert runc is not None and runc.returncode == 0
    assert cfg == json.loads((tmp_path / "r" / "config.json").read_text())
    again = berth("spec", "--bundle", str(tmp_path))
    assert again.returncode == 1 and "exists" in again.stderr


def test_console_socket_receives_the_pty(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                         tmp_path: Path) -> None:
    cid = container_id(request)

    def tty(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", "tty; ls -l /proc/self/fd/0 /dev/console | cut -c1; read x; "
                                  "echo got $x"]

    bundle = bundles.make([], mutate=tty)
    sock_path = tmp_path / "console.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    try:
        proc = subprocess.Popen([*berth.argv, "--root", str(berth.root), "run", "-d", "--console-socket",
                                 str(sock_path), "-b", str(bundle), cid], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        server.settimeout(20)
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
        master = fds[0]
        os.write(master, b"hi\n")
        buf = b""
        deadline = time.monotonic() + 10
        while b"got hi" not in buf and time.monotonic() < deadline:
            try:
                buf += os.read(master, 4096)
            except OSError:
                break
        os.close(master)
        text = buf.decode()
        assert "/dev/pts/0" in text and "got hi" in text
    finally:
        server.close()


def test_run_with_a_terminal_and_no_console_socket_relays_the_pty(berth: Runtime, bundles: Bundles,
                                                                  request: pytest.FixtureRequest) -> None:
    def tty(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", "tty; exit 3"]

    out = berth("run", "-b", str(bundles.make([], mutate=tty)), container_id(request))
    assert out.returncode == 3 and "/dev/pts/0" in out.stdout


def test_create_with_a_terminal_but_no_console_socket_is_refused(berth: Runtime, bundles: Bundles,
                                                                 request: pytest.FixtureRequest) -> None:
    def tty(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["process"]["terminal"] = True

    out = berth("create", "-b", str(bundles.make(["sh"], mutate=tty)), container_id(request))
    assert out.returncode == 1 and "console socket" in out.stderr


def test_kill_all_signals_every_process(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["sh", "-c", "sleep 1000 & sleep 1000 & wait"])), cid, check=True)
    time.sleep(0.2)
    assert len(json.loads(berth("ps", "--format", "json", cid, check=True).stdout)) == 3
    berth("kill", "--all", cid, str(int(signal.SIGKILL)), check=True)
    _wait_status(berth, cid, "stopped")


def test_hooks_run_with_the_state_on_stdin(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    hook.chmod(0o755)

    def hooks(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["hooks"] = {kind: [{"path": str(hook), "args": ["hook.sh", kind]}]
                        for kind in ("createRuntime", "prestart", "poststart", "poststop")}

    cid = container_id(request)
    out = berth("run", "-b", str(bundles.make(["true"], mutate=hooks)), cid)
    assert out.returncode == 0, out.stderr
    lines = log.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["createRuntime", "prestart", "poststart", "poststop"]
    first = json.loads(lines[0].split(" ", 1)[1])
    assert first["id"] == cid and first["status"] == "created" and first["pid"] > 0
    assert json.loads(lines[3].split(" ", 1)[1])["status"] == "stopped"


def test_a_failing_prestart_hook_fails_create_and_leaves_nothing(berth: Runtime, bundles: Bundles,
                                                                 request: pytest.FixtureRequest) -> None:
    def hooks(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}

    cid = container_id(request)
    out = berth("create", "-b", str(bundles.make(["sleep", "100"], mutate=hooks)), cid)
    assert out.returncode == 1 and "prestart hook /bin/sh exited with 3: nope" in out.stderr
    assert berth.ids() == []


def test_no_fd_of_the_host_reaches_the_container(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                                 tmp_path: Path) -> None:
    secret = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # an inheritable directory fd (CVE-2024-21626)
    os.set_inheritable(secret, True)
    try:
        bundle = bundles.make(["sh", "-c", "ls /proc/self/fd; ls -l /proc/1/fd | grep -c host-only || true"])
        (tmp_path / "host-only").mkdir()
        proc = subprocess.run([*berth.argv, "--root", str(berth.root), "run", "-b", str(bundle),
                               container_id(request)], capture_output=True, text=True, pass_fds=(secret,),
                              stdin=subprocess.DEVNULL, timeout=60)
    finally:
        os.close(secret)
    assert proc.returncode == 0, proc.stderr
    fds = proc.stdout.split()
    assert fds[:3] == ["0", "1", "2"] and len(fds) == 5 and fds[4] == "0"  # fds[3]: ls's own directory


def test_errors_go_to_the_log_in_json(berth: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    proc = subprocess.run([*berth.argv, "--root", str(berth.root), "--log", str(log), "--log-format", "json",
                           "state", "ghost"], capture_output=True, text=True)
    assert proc.returncode == 1 and "container ghost does not exist" in proc.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "ghost" in entry["msg"] and entry["time"].endswith("Z")


def test_the_init_refuses_imports_once_inside_the_container() -> None:
    """After pivot_root, sys.path names the image's directories: any import would run the image's code."""
    from berth.runtime import init

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            init._refuse_imports()
            try:
                import xml.dom.minidom  # noqa: F401  (not imported by anything before)
                os.write(w, b"imported")
            except ImportError as exc:
                os.write(w, str(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    message = os.read(r, 1000).decode()
    os.close(r)
    assert "refused inside the container" in message


def test_exec_with_a_tty(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["sleep", "1000"])), cid, check=True)
    out = berth("exec", "-t", cid, "sh", "-c", "tty; exit 4")
    assert out.returncode == 4 and out.stdout.startswith("/dev/pts/"), out.stderr
    refused = berth("exec", "-t", "-d", cid, "true")
    assert refused.returncode == 1 and "console-socket" in refused.stderr


def test_preserve_fds_passes_exactly_the_given_fds(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                                   tmp_path: Path) -> None:
    data = tmp_path / "shared.txt"
    data.write_text("from the host\n")
    bundle = bundles.make(["sh", "-c", "cat <&3; ls /proc/self/fd | wc -l"])
    # a shell opens fds 3 and 4 and execs the runtime: fd 3 is preserved, fd 4 must not reach the container
    proc = subprocess.run(["sh", "-c", f'exec 3< "{data}" 4< "{data}"; exec "$@"', "sh", *berth.argv,
                           "--root", str(berth.root), "run", "--preserve-fds", "1", "-b", str(bundle),
                           container_id(request)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "from the host"
    assert proc.stdout.split()[-1] == "5"  # 0 1 2, the preserved 3, and ls's own directory fd: not 4


def test_a_container_joins_another_s_namespaces_by_path(berth: Runtime, bundles: Bundles,
                                                        request: pytest.FixtureRequest) -> None:
    first = container_id(request, "-a")
    berth("run", "-d", "-b", str(bundles.make(["sleep", "1000"])), first, check=True)
    pid = int(_state(berth, first)["pid"])  # type: ignore[call-overload]

    def join(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["linux"]["namespaces"] = [
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
            {"type": "network", "path": f"/proc/{pid}/ns/net"}, {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]
        cfg["hostname"] = None
        cfg["process"]["args"] = ["sh", "-c", "for n in net uts ipc; do readlink /proc/self/ns/$n; done"]

    out = berth("run", "-b", str(bundles.make([], mutate=join)), container_id(request, "-b"))
    assert out.returncode == 0, out.stderr
    net, uts, ipc = out.stdout.split()
    assert net == os.readlink(f"/proc/{pid}/ns/net") and uts == os.readlink(f"/proc/{pid}/ns/uts")
    assert ipc != os.readlink(f"/proc/{pid}/ns/ipc")


def test_a_cgroup_namespace_is_rooted_at_the_container_s_cgroup(berth: Runtime, bundles: Bundles,
                                                                request: pytest.FixtureRequest) -> None:
    def cgroupns(cfg: dict) -> None:  # type: ignore[type-arg]
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["linux"]["resources"]["pids"] = {"limit": 77}
        cfg["process"]["args"] = ["sh", "-c", "grep -E ':(pids|memory):' /proc/self/cgroup; "
                                  "cat /sys/fs/cgroup/pids/pids.max"]

    out = berth("run", "-b", str(bundles.make([], mutate=cgroupns)), container_id(request))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(line.split(":", 1)[1] for line in lines[:2]) == ["memory:/", "pids:/"]
    assert lines[2] == "77"


def test_concurrent_operations_on_one_container_are_serialised(berth: Runtime, bundles: Bundles,
                                                               request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["sleep", "1000"])), cid, check=True)
    argv = [*berth.argv, "--root", str(berth.root)]
    procs = [subprocess.Popen([*argv, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for args in (["pause", cid], ["delete", "--force", cid], ["delete", "--force", cid],
                          ["kill", cid, "KILL"], ["resume", cid], ["delete", "--force", cid])]
    results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        if p.stderr:
            p.stderr.close()
    # every force delete succeeds (the later ones find nothing: fine with --force); the others either worked or
    # failed cleanly on the state they found
    assert [code for code, _ in results[1:3]] == [0, 0] and results[5][0] == 0
    for code, err in results:
        assert code == 0 or any(word in err for word in ("does not exist", "not running", "not paused",
                                                         "cannot pause", "stopped")), err
    assert berth.ids() == []


def test_ps_lists_the_container_s_processes_as_a_table(berth: Runtime, bundles: Bundles,
                                                        request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["sleep", "1000"])), cid, check=True)
    pid = _state(berth, cid)["pid"]
    table = berth("ps", cid, check=True).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 2
    assert str(pid) in table[1].split() and "sleep 1000" in table[1]
    custom = berth("ps", cid, "-o", "pid,comm", check=True).stdout.split()
    assert custom == ["PID", "COMMAND", str(pid), "sleep"]
