"""Events: the on-disk journal (bounded, torn lines skipped), Docker's filters and time values, and GET /events
through berthd driven by the real docker CLI and docker-py (history across a daemon restart, live streaming,
a die reconciled from exit.json), compared with a real dockerd where practical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.api.events import event_json, parse_event_time
from berth.engine.events import Event, EventFilter, EventService, exec_action
from berth.errors import InvalidArgument
from berth.util.journal import Journal
from tests.berthd import PrivateBerthd
from tests.peers import DOCKER_CLI, Daemon, seeded_daemon  # noqa: F401

# -- the journal and the service, no root -------------------------------------------------------------


def test_journal_rotates_and_stays_bounded(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl", max_bytes=1000)
    for i in range(500):
        j.append(json.dumps({"i": i}).encode())
    assert j.size() <= 2 * 1000 + 20
    got = [json.loads(line)["i"] for line in j.lines()]
    assert got == list(range(got[0], 500))     # the newest, in order, none lost between the two files
    assert len(got) > 50


def test_read_after_a_mark_gets_the_tail_even_across_a_rotation(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl", max_bytes=300)
    for i in range(5):
        j.append(b"%03d" % i + b"x" * 40)
    lines, mark = j.read()
    for i in range(5, 12):                  # crosses one rotation (300 bytes = 6 lines)
        j.append(b"%03d" % i + b"x" * 40)
    tail = j.read_after(mark)
    assert [int(line[:3]) for line in lines + tail] == list(range(12))


def test_subscribing_while_others_emit_loses_and_repeats_nothing(tmp_path: Path) -> None:
    ev = EventService(tmp_path / "events", max_bytes=1 << 20)
    for i in range(3000):
        ev.emit("container", "top", str(i))
    stop = threading.Event()
    emitted: list[int] = []

    def emit() -> None:
        i = 3000
        while not stop.is_set() or i < 3500:
            ev.emit("container", "top", str(i))
            emitted.append(i)
            i += 1
    t = threading.Thread(target=emit)
    t.start()
    live: list[Event] = []
    past, unsubscribe = ev.subscribe(0, None, live.append)
    stop.set()
    t.join()
    unsubscribe()
    assert [int(e.actor_id) for e in past + live] == list(range(3000 + len(emitted)))


@pytest.mark.root
def test_a_full_disk_leaves_only_whole_lines(tmp_path: Path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)], check=True)
    try:
        ev = EventService(disk, max_bytes=1 << 20)
        for i in range(200):                      # ~16 KiB of events into 8 KiB: the later ones fail
            ev.emit("container", "top", f"{i:04d}", {"name": "x" * 40})
        got = ev.history(0, None)
        assert ev.skipped <= 1                    # at most the one torn line, ended by its newline
        assert [e.actor_id for e in got] == [f"{i:04d}" for i in range(len(got))]
        assert 20 < len(got) < 200
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_torn_line_spoils_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "events" / "journal.jsonl"
    ev = EventService(tmp_path / "events")
    ev.emit("container", "create", "a" * 64, {"name": "one"})
    with open(path, "ab") as f:
        f.write(b'{"t":1,"type":"cont')      # a crash in the middle of a write
    ev2 = EventService(tmp_path / "events")  # the next daemon
    ev2.emit("container", "start", "a" * 64, {"name": "one"})
    with open(path, "ab") as f:
        f.write(b"not json at all\n")
    assert [e.action for e in ev2.history(0, None)] == ["create", "start"]
    assert ev2.skipped == 2


def test_subscribers_get_every_event_after_the_history_exactly_once(tmp_path: Path) -> None:
    ev = EventService(tmp_path / "events")
    for i in range(5):
        ev.emit("image", "tag", f"sha256:{i}", {"name": f"t:{i}"})
    live: list[Event] = []
    past, unsubscribe = ev.subscribe(0, None, live.append)
    ev.emit("image", "untag", "sha256:9", {"name": "x"})
    unsubscribe()
    ev.emit("image", "delete", "sha256:9", {"name": "x"})
    assert [e.action for e in past] == ["tag"] * 5
    assert [e.action for e in live] == ["untag"]
    assert ev.subscriber_count() == 0


def test_an_unwritable_journal_still_delivers_live(tmp_path: Path) -> None:
    ev = EventService(tmp_path / "events")
    (tmp_path / "events" / "journal.jsonl").mkdir()    # appends now fail with EISDIR
    live: list[Event] = []
    ev.subscribe(None, None, live.append)
    ev.emit("volume", "create", "v1", {"driver": "local"})
    assert [e.actor_id for e in live] == ["v1"]


def _ev(type_: str, action: str, actor: str, **attrs: str) -> Event:
    return Event(type_, action, actor, attrs, 1)


def test_filters_follow_dockerd() -> None:
    cid = "c" * 64
    start = _ev("container", "start", cid, name="web", image="busybox:latest", team="a")
    health = _ev("container", "health_status: healthy", cid, name="web", image="busybox")
    tag = _ev("image", "tag", "sha256:" + "1" * 64, name="busybox:1")
    net = _ev("network", "connect", "n" * 64, name="bnet", container=cid)
    f = EventFilter.parse
    assert f({"type": ["container"]}).matches(start) and not f({"type": ["container"]}).matches(tag)
    assert f({"event": ["health_status"]}).matches(health)          # prefix match for these three
    assert not f({"event": ["health"]}).matches(health)
    assert f({"event": ["health_status: healthy"]}).matches(health)
    assert f({"container": ["web"]}).matches(start) and f({"container": ["ccc"]}).matches(start)
    assert not f({"container": ["web"]}).matches(net)                # other kinds of objects are left out
    assert f({"image": ["busybox"]}).matches(start) and f({"image": ["busybox:latest"]}).matches(start)
    assert f({"image": ["busybox"]}).matches(tag) and not f({"image": ["alpine"]}).matches(tag)
    assert f({"label": ["team"]}).matches(start) and f({"label": ["team=a"]}).matches(start)
    assert not f({"label": ["team=b"]}).matches(start)
    assert f({"network": ["bnet"]}).matches(net) and not f({"network": ["bnet"]}).matches(start)
    assert f({"type": ["container", "image"], "event": ["start", "tag"]}).matches(tag)
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        f({"bogus": ["1"]})


def test_wire_shape_has_the_legacy_fields_only_for_containers_and_images() -> None:
    c = event_json(Event("container", "die", "c1", {"name": "n", "image": "busybox", "exitCode": "3"}, 1_500_000_123))
    assert list(c) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert (c["status"], c["from"], c["time"], c["timeNano"]) == ("die", "busybox", 1, 1_500_000_123)
    assert list(c["Actor"]["Attributes"]) == ["exitCode", "image", "name"]   # sorted, as Go marshals a map
    n = event_json(Event("network", "connect", "n1", {"name": "x"}, 5))
    assert "status" not in n and "id" not in n and n["scope"] == "local"
    assert exec_action("exec_create", ["true"]) == "exec_create: true "
    assert exec_action("exec_start", ["/bin/sh", "-c", "true"]) == "exec_start: /bin/sh -c true"


def test_time_values() -> None:
    now = 1_700_000_000 * 10**9
    assert parse_event_time("", now) is None
    assert parse_event_time("1700000000", now) == now
    assert parse_event_time("1700000000.5", now) == now + 500_000_000
    assert parse_event_time("1700000000.000000001", now) == now + 1
    assert parse_event_time("10m", now) == now - 600 * 10**9
    assert parse_event_time("1h30m", now) == now - 5400 * 10**9
    assert parse_event_time("2023-11-14T22:13:20Z", now) == now
    assert parse_event_time("2023-11-14T22:13:20.25+00:00", now) == now + 250_000_000
    for bad in ("abc", "10x", "2023-13-01T00:00:00Z", "1.2.3", "1700000000.1234567891"):
        with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
            parse_event_time(bad, now)


# -- through berthd --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    if os.geteuid() != 0:
        pytest.skip("berthd needs root")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def _events(host_docker: Any, since: float, until: float, *extra: str) -> list[dict[str, Any]]:
    out = host_docker("events", "--since", f"{since:.9f}", "--until", f"{until:.9f}", "--format", "{{json .}}",
                      *extra).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _cycle(docker: Any, name: str) -> tuple[float, float]:
    """create, start, stop (TERM ignored by sleep as PID 1: kill 15, then kill 9 after 1 s), rm."""
    t0 = time.time()
    docker("create", "--name", name, "--label", "team=berth", "busybox:latest", "sleep", "100")
    docker("start", name)
    docker("stop", "-t", "1", name)
    docker("rm", name)
    return t0, time.time()


@pytest.mark.root
def test_a_container_cycle_gives_dockers_events_in_order(b: PrivateBerthd) -> None:
    t0, t1 = _cycle(b.docker, "evcycle")
    got = _events(b.docker, t0, t1 + 1, "--filter", "container=evcycle")
    assert [(e["Action"], e["Actor"]["Attributes"].get("signal")) for e in got] == [
        ("create", None), ("start", None), ("kill", "15"), ("kill", "9"), ("die", None), ("stop", None),
        ("destroy", None)]
    cid = got[0]["id"]
    for e in got:
        assert (e["Type"], e["status"], e["id"], e["from"], e["scope"]) == ("container", e["Action"], cid,
                                                                           "busybox:latest", "local")
        assert e["Actor"]["Attributes"]["name"] == "evcycle" and e["Actor"]["Attributes"]["team"] == "berth"
        assert e["time"] == e["timeNano"] // 10**9 and t0 - 1 <= e["time"] <= t1 + 1
    assert got[4]["Actor"]["Attributes"]["exitCode"] == "137"
    assert [e["timeNano"] for e in got] == sorted(e["timeNano"] for e in got)


@pytest.mark.root
@pytest.mark.interop
@pytest.mark.slow
def test_the_cycle_matches_a_real_dockerd(b: PrivateBerthd, seeded_daemon: Daemon) -> None:  # noqa: F811
    def on(host: str) -> Any:
        from tests.peers import docker
        return lambda *args: docker(host, *args)

    ours = _events(b.docker, *_with_slack(_cycle(b.docker, "evpeer")), "--filter", "container=evpeer")
    theirs = _events(on(seeded_daemon.host), *_with_slack(_cycle(on(seeded_daemon.host), "evpeer")),
                     "--filter", "container=evpeer", "--filter", "type=container")

    def shape(events: list[dict[str, Any]]) -> list[tuple[str, list[str], list[str]]]:
        return [(e["Action"], sorted(e["Actor"]["Attributes"]), sorted(e)) for e in events]
    assert shape(ours) == shape(theirs)


def _with_slack(span: tuple[float, float]) -> tuple[float, float]:
    return span[0], span[1] + 1


@pytest.mark.root
def test_docker_events_streams_with_a_filter_until_the_client_leaves(b: PrivateBerthd, tmp_path: Path) -> None:
    proc = subprocess.Popen([DOCKER_CLI, "-H", b.host, "events", "--filter", "container=evstream", "--filter",
                             "event=start", "--filter", "event=die", "--format", "{{.Action}} {{.Actor.Attributes.name}}"],
                            stdout=subprocess.PIPE, env={**os.environ, "DOCKER_CONFIG": str(tmp_path)})
    try:
        time.sleep(0.5)     # the stream is open: headers came at once
        b.docker("run", "--rm", "--name", "evstream", "busybox", "true")
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"start evstream\n"
        assert proc.stdout.readline() == b"die evstream\n"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.root
def test_docker_py_receives_live_events_quickly(b: PrivateBerthd) -> None:
    import docker as docker_py

    client = docker_py.DockerClient(base_url=b.host, version="1.44")
    received: list[tuple[float, dict[str, Any]]] = []
    stream = client.events(decode=True, filters={"container": "evpy", "event": "create"})

    def read() -> None:
        for item in stream:
            received.append((time.time_ns(), item))
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    c = client.containers.create("busybox", ["true"], name="evpy")
    reader.join(10)
    stream.close()
    c.remove()
    assert len(received) == 1
    got_at, item = received[0]
    assert item["Action"] == "create" and item["Actor"]["Attributes"]["name"] == "evpy"
    latency_ms = (got_at - item["timeNano"]) / 1e6
    print(f"event latency, emit to docker-py: {latency_ms:.1f} ms")
    assert latency_ms < 200


@pytest.mark.root
def test_bad_values_get_dockers_400s(b: PrivateBerthd) -> None:
    for query, text in (("since=abc", 'failed to parse value as time or duration: "abc"'),
                        ("until=10x", "failed to parse value as time or duration"),
                        ("since=100&until=50", "`since` time (100) cannot be after `until` time (50)"),
                        ("filters=%7Bbad", "invalid filters"),
                        ("filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", "invalid filter 'bogus'")):
        status, body = b.api("GET", f"/v1.44/events?{query}")
        assert status == 400, (query, body)
        assert text in json.loads(body)["message"], (query, body)
    status, body = b.api("GET", "/v1.44/events?since=1&until=2")   # all in the past: answered at once, empty
    assert (status, body) == (200, b"")
    proc = b.docker("events", "--since", "yesterday", check=False)
    assert proc.returncode != 0


@pytest.mark.root
def test_image_events(b: PrivateBerthd) -> None:
    t0 = time.time()
    b.docker("tag", "busybox", "evimg:1")
    b.docker("rmi", "evimg:1")
    got = _events(b.docker, t0, time.time() + 1, "--filter", "type=image")
    image_id = b.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip()
    assert [(e["Action"], e["id"], e["Actor"]["Attributes"]["name"]) for e in got] == [
        ("tag", image_id, "evimg:1"), ("untag", image_id, image_id)]
    assert all("from" not in e for e in got)


@pytest.mark.root
@pytest.mark.slow
def test_history_survives_a_restart_and_a_die_while_down_is_recorded_when_it_happened() -> None:
    with PrivateBerthd() as d:
        status, body = d.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        t0 = time.time()
        d.docker("run", "-d", "--name", "evdown", "busybox", "sleep", "1000")
        pid = json.loads(d.docker("inspect", "evdown").stdout)[0]["State"]["Pid"]
        d.kill()                                    # kill -9 berthd
        os.kill(pid, signal.SIGKILL)                # the container dies while nobody watches
        died_at = time.time()
        time.sleep(1.5)
        d.start()
        got = _events(d.docker, t0, time.time() + 1, "--filter", "container=evdown")
        assert [e["Action"] for e in got] == ["create", "start", "die"]
        die = got[2]
        assert die["Actor"]["Attributes"]["exitCode"] == "137"
        assert abs(die["timeNano"] / 1e9 - died_at) < 1.0      # when it happened, not when berthd learnt it
        d.docker("rm", "evdown")
        assert (d.root / "events" / "journal.jsonl").stat().st_size > 0


@pytest.mark.root
@pytest.mark.slow
def test_the_other_container_actions_have_their_events(b: PrivateBerthd, tmp_path: Path) -> None:
    t0 = time.time()
    b.docker("run", "-d", "--name", "evmore", "busybox", "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait")
    b.docker("pause", "evmore")
    b.docker("unpause", "evmore")
    b.docker("top", "evmore")
    b.docker("exec", "evmore", "sh", "-c", "exit 4", check=False)
    (tmp_path / "f").write_text("x")
    b.docker("cp", str(tmp_path / "f"), "evmore:/tmp/f")
    b.docker("cp", "evmore:/tmp/f", str(tmp_path / "back"))
    b.docker("update", "--restart", "on-failure:2", "evmore")
    b.docker("commit", "-m", "snap", "evmore", "evmore-img:1")
    b.docker("export", "-o", str(tmp_path / "x.tar"), "evmore")
    b.docker("restart", "-t", "5", "evmore")
    b.docker("rename", "evmore", "evmore2")
    b.docker("rm", "-f", "evmore2")
    b.docker("rmi", "evmore-img:1")
    got = _events(b.docker, t0, time.time() + 1, "--filter", "type=container")
    actions = [e["Action"] for e in got]
    assert actions == [
        "create", "start", "pause", "unpause", "top", "exec_create: sh -c exit 4", "exec_start: sh -c exit 4",
        "exec_die", "extract-to-dir", "archive-path", "update", "pause", "unpause", "commit", "export", "kill", "die", "stop", "start",
        "restart", "rename", "kill", "die", "destroy"], actions
    by = {e["Action"]: e["Actor"]["Attributes"] for e in got}
    assert by["exec_die"]["exitCode"] == "4" and by["exec_die"]["execID"] == by["exec_create: sh -c exit 4"]["execID"]
    assert by["commit"]["comment"] == "snap" and by["commit"]["imageID"].startswith("sha256:")
    assert by["rename"]["oldName"] == "/evmore" and by["rename"]["name"] == "evmore2"
    assert [e["Actor"]["Attributes"]["exitCode"] for e in got if e["Action"] == "die"] == ["0", "137"]


@pytest.mark.root
def test_an_oom_kill_is_an_event_before_the_die(b: PrivateBerthd) -> None:
    t0 = time.time()
    b.docker("run", "--name", "evoom", "--memory", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
             "head -c 200m /dev/zero | tail > /dev/null", check=False)
    got = _events(b.docker, t0, time.time() + 1, "--filter", "container=evoom", "--filter", "event=oom",
                  "--filter", "event=die")
    assert [e["Action"] for e in got] == ["oom", "die"]
    b.docker("rm", "evoom")


@pytest.mark.root
def test_an_until_in_the_future_replays_then_streams_until_it_passes(b: PrivateBerthd) -> None:
    t0 = time.time()
    b.docker("create", "--name", "evuntil", "busybox", "true")
    proc = subprocess.Popen([DOCKER_CLI, "-H", b.host, "events", "--since", f"{t0:.3f}", "--until",
                             f"{time.time() + 2:.3f}", "--filter", "container=evuntil", "--format", "{{.Action}}"],
                            stdout=subprocess.PIPE)
    time.sleep(0.5)
    b.docker("rm", "evuntil")
    out, _ = proc.communicate(timeout=10)     # ends by itself once `until` has passed
    assert out.decode().split() == ["create", "destroy"]
    assert time.time() - t0 < 6


def _scenario(docker: Any, name: str) -> tuple[float, float]:
    """An attached run, exec, pause, rename, kill -s, restart, tag and untag."""
    t0 = time.time()
    docker("run", "--name", name, "--label", "tier=test", "busybox:latest", "sh", "-c", "exit 3", check=False)
    docker("rm", name)
    docker("run", "-d", "--name", name, "busybox:latest", "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait")
    docker("exec", name, "true")
    docker("pause", name)
    docker("unpause", name)
    docker("kill", "-s", "USR1", name)
    docker("rename", name, name + "2")
    docker("restart", "-t", "5", name + "2")
    docker("rm", "-f", name + "2")
    docker("tag", "busybox:latest", f"{name}:tagged")
    docker("rmi", f"{name}:tagged")
    return t0, time.time() + 1


@pytest.mark.root
@pytest.mark.interop
@pytest.mark.slow
def test_more_actions_match_a_real_dockerd(b: PrivateBerthd, seeded_daemon: Daemon) -> None:  # noqa: F811
    from tests.peers import docker

    def on(host: str) -> Any:
        return lambda *args, check=True: docker(host, *args, check=check)

    def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        out = []
        for e in events:
            attrs = e["Actor"]["Attributes"]
            keep = {k: v for k, v in attrs.items() if k in ("exitCode", "signal", "name", "oldName", "image")}
            if e["Type"] == "image":
                keep = {"name": "<id>" if attrs["name"].startswith("sha256:") else attrs["name"]}
            out.append((e["Type"], e["Action"], sorted(attrs), sorted(keep.items()), sorted(e)))
        return out

    spans = {}
    for label, host_docker in (("berth", on(b.host)), ("docker", on(seeded_daemon.host))):
        spans[label] = (host_docker, _scenario(host_docker, "evmatch"))
    got = {label: shape(_events(d, *span, "--filter", "type=container", "--filter", "type=image"))
           for label, (d, span) in spans.items()}
    assert got["berth"] == got["docker"]
    assert [a for _, a, *_ in got["berth"]] == [
        "create", "attach", "start", "die", "destroy", "create", "start", "exec_create: true ", "exec_start: true ",
        "exec_die", "pause", "unpause", "kill", "rename", "kill", "die", "stop", "start", "restart", "kill", "die",
        "destroy", "tag", "untag"]


@pytest.mark.root
def test_prunes_and_commit_tags_have_dockers_events(b: PrivateBerthd) -> None:
    t0 = time.time()
    b.docker("run", "--name", "evprune", "busybox", "true")
    dangling = b.docker("commit", "evprune").stdout.decode().strip()        # no tag: dangling
    b.docker("commit", "evprune", "evprune-img:1")
    b.docker("container", "prune", "-f")
    b.docker("image", "prune", "-f")
    b.docker("rmi", "evprune-img:1")
    got = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"].get("name"))
           for e in _events(b.docker, t0, time.time() + 1)
           if e["Type"] == "image" or e["Action"] in ("commit", "destroy", "prune")]
    tagged = [e[2] for e in got if e[1] == "tag"][0]
    assert got == [
        ("container", "commit", got[0][2], "evprune"),
        ("image", "tag", tagged, "evprune-img:1"), ("container", "commit", got[2][2], "evprune"),
        ("container", "destroy", got[2][2], "evprune"), ("container", "prune", "", None),
        ("image", "delete", dangling, dangling), ("image", "prune", "", None),
        ("image", "untag", tagged, tagged), ("image", "delete", tagged, tagged)], got
