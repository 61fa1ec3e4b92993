"""Containers through berthd, driven by docker-py (PyPI `docker`) as its users do: run (attached and detached), logs,
exec_run, the raw attach and exec sockets with stdin half-closed, wait/stop/kill/restart/pause/rename, top, diff,
export, commit, list filters, prune, and the errors docker-py raises from Docker's status codes."""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime

import docker
import docker.errors
import docker.models.containers
import pytest

from tests.berthd import PrivateBerthd
from tests.peers import _mounts_under

pytestmark = pytest.mark.root
LOOP = "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"
Container = docker.models.containers.Container


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)
        assert _mounts_under(str(daemon.root / "containers")) == []


@pytest.fixture
def client(b: PrivateBerthd) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=b.host, timeout=60)
    yield c
    for container in c.containers.list(all=True):
        container.remove(force=True)
    c.close()


def raw_socket(sock: object) -> socket.socket:
    """docker-py hands back a SocketIO over a unix socket; its _sock is the socket itself."""
    inner = getattr(sock, "_sock", sock)
    assert isinstance(inner, socket.socket)
    return inner


def read_frames(sock: socket.socket, timeout: float = 10) -> list[tuple[int, bytes]]:
    """Docker's stream frames until the daemon closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    frames = []
    while data:
        assert len(data) >= 8, data
        kind, size = data[0], int.from_bytes(data[4:8], "big")
        frames.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return frames


# ------------------------------------------------------------------------------------------------ run and logs

def test_run_attached_returns_stdout_and_raises_container_error_with_the_exit_code(
        client: docker.DockerClient) -> None:
    assert client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], stderr=True, remove=True)
    assert sorted(out.splitlines()) == [b"err", b"out"]
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3 and b"bad" in (info.value.stderr or b"")
    assert client.containers.list(all=True) == []


def test_run_detached_then_wait_logs_and_inspect(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; exit 7"], detach=True,
                              name="pyrun", environment={"GREETING": "hi"}, labels={"team": "berth"},
                              working_dir="/tmp", hostname="pyhost")
    assert isinstance(c, Container) and len(c.id) == 64
    assert c.wait(timeout=30) == {"Error": None, "StatusCode": 7}
    assert c.logs() == b"one\ntwo\n" or sorted(c.logs().splitlines()) == [b"one", b"two"]
    assert c.logs(stderr=False) == b"one\n"
    assert c.logs(stdout=False) == b"two\n"
    c.reload()
    assert c.status == "exited" and c.name == "pyrun" and c.labels == {"team": "berth"}
    attrs = c.attrs
    assert attrs["State"]["ExitCode"] == 7 and attrs["State"]["Running"] is False
    assert attrs["Config"]["Env"][-1] == "GREETING=hi" or "GREETING=hi" in attrs["Config"]["Env"]
    assert attrs["Config"]["WorkingDir"] == "/tmp" and attrs["Config"]["Hostname"] == "pyhost"
    assert attrs["Config"]["Cmd"] == ["sh", "-c", "echo one; echo two >&2; exit 7"]
    assert attrs["Name"] == "/pyrun" and attrs["Id"] == c.id
    assert c.image.tags == ["busybox:latest"]
    assert client.containers.get("pyrun").id == c.id and client.containers.get(c.id[:12]).id == c.id


def test_logs_stream_follow_timestamps_and_tail(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; "
                                                      "echo late"], detach=True)
    c.wait(timeout=30)
    assert c.logs(tail=2) == b"line5\nlate\n"
    assert c.logs(tail=0) == b""
    stamped = c.logs(timestamps=True, tail=1).decode()
    stamp, _, text = stamped.partition(" ")
    assert text == "late\n"
    datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    assert stamp.endswith("Z")
    streamed = b"".join(c.logs(stream=True))
    assert streamed == b"line1\nline2\nline3\nline4\nline5\nlate\n"
    # follow on a running container: lines as they come, the stream ends when it exits
    ticker = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 0.5; echo b; sleep 0.5; echo c"],
                                   detach=True)
    started = time.monotonic()
    lines = list(ticker.logs(stream=True, follow=True))
    assert b"".join(lines) == b"a\nb\nc\n" and time.monotonic() - started < 10
    since = c.logs(since=int(time.time()) + 60)
    assert since == b""


# ------------------------------------------------------------------------------------------------ exec

def test_exec_run_exit_codes_env_workdir_user_tty_and_demux(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    result = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert result.exit_code == 4 and sorted(result.output.splitlines()) == [b"err", b"out"]
    demuxed = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert demuxed.exit_code == 0 and demuxed.output == (b"out\n", b"err\n")
    env = c.exec_run(["sh", "-c", "echo $A:$B"], environment={"A": "1", "B": "two"})
    assert env.output == b"1:two\n"
    assert c.exec_run("pwd", workdir="/etc").output == b"/etc\n"
    assert c.exec_run(["id", "-u"], user="nobody").output == b"65534\n"
    assert c.exec_run(["id", "-u"], user="1234:5678").output == b"1234\n"
    tty = c.exec_run(["sh", "-c", "tty; echo x"], tty=True)
    assert tty.exit_code == 0 and tty.output.startswith(b"/dev/pts/") and tty.output.endswith(b"x\r\n")
    missing = c.exec_run(["no-such-command"])
    assert missing.exit_code in (126, 127)
    stream = c.exec_run(["sh", "-c", "echo 1; sleep 0.2; echo 2"], stream=True)
    assert b"".join(stream.output) == b"1\n2\n"
    detached = c.exec_run(["sh", "-c", "echo hi > /tmp/detached"], detach=True)
    assert not detached.output and detached.exit_code is None
    deadline = time.monotonic() + 10
    while c.exec_run(["cat", "/tmp/detached"]).output != b"hi\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_exec_socket_stdin_half_close_echo_and_close_at_exit(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    api = client.api
    exec_id = api.exec_create(c.id, ["cat"], stdin=True, stdout=True, stderr=True)["Id"]
    sock = raw_socket(api.exec_start(exec_id, socket=True))
    try:
        sock.sendall(b"through exec stdin\n")
        sock.shutdown(socket.SHUT_WR)
        frames = read_frames(sock)
    finally:
        sock.close()
    assert b"".join(data for kind, data in frames if kind == 1) == b"through exec stdin\n"
    deadline = time.monotonic() + 10
    while api.exec_inspect(exec_id)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    inspected = api.exec_inspect(exec_id)
    assert inspected["ExitCode"] == 0 and inspected["ProcessConfig"]["entrypoint"] == "cat"


def test_exec_socket_closes_when_the_process_exits_without_stdin(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    exec_id = client.api.exec_create(c.id, ["sh", "-c", "echo bye; exit 2"])["Id"]
    sock = raw_socket(client.api.exec_start(exec_id, socket=True))
    try:
        frames = read_frames(sock)          # returns only because berthd closes the connection
    finally:
        sock.close()
    assert frames == [(1, b"bye\n")]
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 2


# ------------------------------------------------------------------------------------------------ attach

def test_attach_socket_stdin_half_close_echo_and_close_at_exit(client: docker.DockerClient) -> None:
    c = client.containers.create("busybox", ["cat"], stdin_open=True)
    api = client.api
    sock = raw_socket(api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "stdout": 1, "stderr": 1}))
    try:
        c.start()
        sock.sendall(b"echo me\n")
        sock.sendall(b"and me\n")
        sock.shutdown(socket.SHUT_WR)
        frames = read_frames(sock)
    finally:
        sock.close()
    assert b"".join(data for kind, data in frames if kind == 1) == b"echo me\nand me\n"
    assert c.wait(timeout=10)["StatusCode"] == 0


def test_attach_to_a_running_container_streams_until_it_exits(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "sleep 0.5; echo late; exit 1"], detach=True)
    output = b"".join(c.attach(stream=True, logs=False))
    assert output == b"late\n"
    assert c.wait(timeout=10)["StatusCode"] == 1


def test_attach_with_logs_replays_what_was_written(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "echo early; echo err >&2; sleep 1.5; echo late"],
                              detach=True)
    time.sleep(0.7)
    assert c.attach(stream=False, logs=True, stderr=False) == b"early\n"      # no stream: the logs so far, then EOF
    assert c.attach(stream=False, logs=False) == b""
    assert b"".join(c.attach(stream=True, logs=True, stderr=False)) == b"early\nlate\n"
    assert c.wait(timeout=10)["StatusCode"] == 0
    tty = client.containers.run("busybox", ["sh", "-c", "echo ttyout"], detach=True, tty=True)
    tty.wait(timeout=10)
    for _ in range(5):      # bytes that reach docker-py together with the 101's headers are lost to it
        assert tty.attach(stream=False, logs=True) == b"ttyout\r\n"


# ------------------------------------------------------------------------------------------------ state changes

def test_stop_kill_restart_pause_unpause_rename(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", LOOP], detach=True, name="pystate")
    started = time.monotonic()
    c.stop(timeout=5)
    assert time.monotonic() - started < 4            # the TERM trap ends it
    c.reload()
    assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 0)
    c.restart(timeout=1)
    c.reload()
    assert c.status == "running" and c.attrs["RestartCount"] == 0
    c.pause()
    c.reload()
    assert c.status == "paused" and c.attrs["State"]["Paused"] is True
    with pytest.raises(docker.errors.APIError) as info:
        c.pause()
    assert info.value.status_code in (409, 500)
    c.unpause()
    c.reload()
    assert c.status == "running"
    c.rename("pyrenamed")
    c.reload()
    assert c.name == "pyrenamed"
    assert client.containers.get("pyrenamed").id == c.id
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pystate")
    c.kill(signal="SIGKILL")
    assert c.wait(timeout=10)["StatusCode"] == 137
    with pytest.raises(docker.errors.APIError) as info:
        c.kill()
    assert info.value.status_code == 409


def test_top_diff_and_export(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "mkdir /newdir && echo x > /newdir/f && rm /bin/true && "
                                                      "sleep 60"], detach=True)
    deadline = time.monotonic() + 10
    while {"Path": "/newdir/f", "Kind": 1} not in (c.diff() or []):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    changes = {d["Path"]: d["Kind"] for d in c.diff()}
    assert changes["/newdir"] == 1 and changes["/bin/true"] == 2 and changes["/bin"] == 0
    top = c.top()
    assert "PID" in top["Titles"] and "CMD" in top["Titles"]
    cmds = [p[top["Titles"].index("CMD")] for p in top["Processes"]]
    assert any("sleep 60" in cmd for cmd in cmds), cmds
    top_ps = c.top(ps_args="-o pid,comm")
    assert top_ps["Titles"][-1] == "COMMAND"
    exported = b"".join(c.export())
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = set(tar.getnames())
        assert "newdir/f" in names and "bin/sh" in names and "bin/true" not in names
        f = tar.extractfile("newdir/f")
        assert f is not None and f.read() == b"x\n"


def test_commit_then_run_the_committed_image(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "echo committed > /marker"], detach=True)
    c.wait(timeout=10)
    image = c.commit(repository="pycommitted", tag="1", message="from docker-py", author="berth tests",
                     changes=["ENV FROM_COMMIT=yes", 'CMD ["sh", "-c", "cat /marker; echo $FROM_COMMIT"]'])
    try:
        assert "pycommitted:1" in image.tags
        assert image.attrs["Comment"] == "from docker-py" and image.attrs["Author"] == "berth tests"
        assert client.containers.run("pycommitted:1", remove=True) == b"committed\nyes\n"
    finally:
        client.images.remove("pycommitted:1")


def test_list_filters_and_prune(client: docker.DockerClient) -> None:
    running = client.containers.run("busybox", ["sleep", "60"], detach=True, name="pyrunning",
                                    labels={"role": "server"})
    done = client.containers.run("busybox", ["true"], detach=True, name="pydone", labels={"role": "job"})
    done.wait(timeout=10)
    created = client.containers.create("busybox", ["true"], name="pycreated")

    def ids(**kwargs: object) -> set[str]:
        return {c.id for c in client.containers.list(**kwargs)}
    assert ids() == {running.id}
    assert ids(all=True) == {running.id, done.id, created.id}
    assert ids(all=True, filters={"status": "exited"}) == {done.id}
    assert ids(all=True, filters={"status": "created"}) == {created.id}
    assert ids(all=True, filters={"label": "role=job"}) == {done.id}
    assert ids(all=True, filters={"label": "role"}) == {running.id, done.id}
    assert ids(all=True, filters={"name": "pyrun"}) == {running.id}
    assert ids(all=True, filters={"id": done.id[:12]}) == {done.id}
    assert ids(all=True, filters={"exited": 0}) == {done.id}
    assert ids(all=True, filters={"ancestor": "busybox"}) == {running.id, done.id, created.id}
    assert ids(all=True, limit=1) == {created.id}
    assert [c.id for c in client.containers.list(all=True, sparse=True, filters={"name": "pydone"})] == [done.id]
    pruned = client.containers.prune(filters={"label": "role=job"})
    assert pruned["ContainersDeleted"] == [done.id]
    pruned = client.containers.prune()
    assert pruned["ContainersDeleted"] == [created.id]
    assert ids(all=True) == {running.id}


# ------------------------------------------------------------------------------------------------ errors

def test_errors_carry_dockers_status_codes(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.NotFound) as nf:
        client.containers.get("no-such-container")
    assert nf.value.status_code == 404 and "No such container" in str(nf.value)
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("no-such-image:1")
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="pyerr")
    with pytest.raises(docker.errors.APIError) as conflict:
        client.containers.create("busybox", ["true"], name="pyerr")
    assert conflict.value.status_code == 409 and "already in use" in str(conflict.value)
    with pytest.raises(docker.errors.APIError) as running:
        c.remove()
    assert running.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as bad:
        client.containers.create("busybox", ["true"], cap_add=["NO_SUCH_CAP"])
    assert bad.value.status_code == 400 and "NO_SUCH_CAP" in str(bad.value)
    with pytest.raises(docker.errors.APIError) as bad:
        client.api.create_container("busybox", ["true"], host_config={"Memory": -5})
    assert bad.value.status_code == 400
    with pytest.raises(docker.errors.APIError) as bad_restart:
        client.containers.create("busybox", ["true"], restart_policy={"Name": "sometimes"})
    assert bad_restart.value.status_code == 400
    with pytest.raises(docker.errors.NotFound):
        client.api.exec_create("no-such-container", ["true"])
    with pytest.raises(docker.errors.NotFound):
        client.api.exec_inspect("0" * 64)
    with pytest.raises(docker.errors.APIError) as exited:
        done = client.containers.run("busybox", ["true"], detach=True)
        done.wait(timeout=10)
        done.exec_run(["true"])
    assert exited.value.status_code == 409
    c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        c.reload()


def test_stop_kill_and_remove_racing_the_containers_own_exit_never_leave_it_running(
        client: docker.DockerClient) -> None:
    # berthd used to write back the state it read before the exit was recorded: "running" forever after
    for i in range(8):
        c = client.containers.run("busybox", ["true"], detach=True)
        started = time.monotonic()
        if i % 2:
            c.stop(timeout=1)
        else:
            with contextlib.suppress(docker.errors.APIError):      # 409 when it already exited
                c.kill()
        assert c.wait(timeout=5)["StatusCode"] in (0, 137)
        c.reload()
        assert c.status == "exited"
        c.remove(force=True)
        assert time.monotonic() - started < 5
        d = client.containers.run("busybox", ["true"], detach=True)
        started = time.monotonic()
        d.remove(force=True)
        assert time.monotonic() - started < 5


def test_attach_socket_is_closed_when_the_process_exits_with_stdin_still_open(client: docker.DockerClient) -> None:
    c = client.containers.create("busybox", ["sh", "-c", "read line; echo got $line; exit 5"], stdin_open=True)
    sock = raw_socket(client.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "stdout": 1}))
    try:
        c.start()
        sock.sendall(b"one\n")                 # no half-close: the process's exit alone ends the stream
        frames = read_frames(sock)
    finally:
        sock.close()
    assert frames == [(1, b"got one\n")]
    assert c.wait(timeout=10)["StatusCode"] == 5


def test_exec_socket_with_a_tty_is_raw_and_takes_stdin(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    exec_id = client.api.exec_create(c.id, ["sh", "-c", "read x; echo got:$x; exit 3"], stdin=True, tty=True)["Id"]
    sock = raw_socket(client.api.exec_start(exec_id, socket=True, tty=True))
    try:
        sock.sendall(b"typed\n")
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"typed\r\n") and b"got:typed\r\n" in data       # the tty's echo, then the output
    assert b"\x01\x00\x00\x00" not in data                                   # no stream frames with a tty
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 3


def test_wait_conditions(client: docker.DockerClient) -> None:
    c = client.containers.create("busybox", ["sh", "-c", "sleep 1; exit 2"])
    assert c.wait(condition="not-running", timeout=5)["StatusCode"] == 0      # created is not running
    c.start()
    assert c.wait(condition="next-exit", timeout=10)["StatusCode"] == 2
    assert c.wait(condition="not-running", timeout=5)["StatusCode"] == 2
    c.remove()
    d = client.containers.run("busybox", ["sh", "-c", "sleep 0.5; exit 4"], detach=True, auto_remove=True)
    assert d.wait(condition="removed", timeout=10)["StatusCode"] == 4
    with pytest.raises(docker.errors.NotFound):
        d.reload()


def test_inspect_has_dockers_fields(client: docker.DockerClient) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="pyinspect", mem_limit="64m",
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
                              environment=["K=V"], labels={"a": "b"}, stop_signal="SIGUSR1")
    a = client.api.inspect_container(c.id)
    state = a["State"]
    assert state["Status"] == "running" and state["Running"] and state["Pid"] > 0 and not state["Paused"]
    assert state["StartedAt"].endswith("Z") and state["FinishedAt"] == "0001-01-01T00:00:00Z"
    datetime.strptime(state["StartedAt"][:19], "%Y-%m-%dT%H:%M:%S")
    assert a["Path"] == "sleep" and a["Args"] == ["60"] and a["Name"] == "/pyinspect"
    assert a["Image"].startswith("sha256:") and a["Config"]["Image"] == "busybox"
    assert a["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert a["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert "K=V" in a["Config"]["Env"] and a["Config"]["Labels"] == {"a": "b"}
    assert a["Config"]["StopSignal"] == "SIGUSR1"
    assert isinstance(a["Mounts"], list) and "NetworkSettings" in a
    assert a["RestartCount"] == 0 and a["Created"].endswith("Z")
    c.kill()
    c.wait(timeout=10)
    finished = client.api.inspect_container(c.id)["State"]
    assert finished["Status"] == "exited" and finished["ExitCode"] == 137 and finished["Pid"] == 0
    assert finished["FinishedAt"] != "0001-01-01T00:00:00Z"
