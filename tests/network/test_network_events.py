"""Network events (create, connect, disconnect, destroy) through berthd, compared with a real dockerd's for the
same docker CLI scenario: connect and disconnect of a created and of a running container, a start and a stop on a
user network, the default bridge, host and none, and the removal of the networks.

dockerd 20.10's own quirks are part of the reference: no event for connecting a container that is not running,
one for disconnecting it, two for disconnecting a running one, and connect/disconnect on host and none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import PrivateDockerd, docker, seed_images

pytestmark = pytest.mark.root

SCENARIO: list[tuple[str, ...]] = [
    ("network", "create", "--label", "a=b", "evnet"),
    ("network", "create", "evnet2"),
    ("create", "--name", "c0", "--network", "evnet", "busybox:latest", "sleep", "100"),
    ("network", "connect", "evnet2", "c0"),          # not running: dockerd reports nothing
    ("network", "disconnect", "evnet2", "c0"),       # not running: one disconnect
    ("start", "c0"),
    ("network", "connect", "--alias", "x", "evnet2", "c0"),
    ("network", "disconnect", "evnet2", "c0"),       # running: two
    ("stop", "-t", "0", "c0"),
    ("rm", "c0"),
    ("run", "--rm", "busybox:latest", "true"),
    ("run", "--rm", "--network", "host", "busybox:latest", "true"),
    ("run", "--rm", "--network", "none", "busybox:latest", "true"),
    ("network", "rm", "evnet", "evnet2"),
]
ANCHORS = {"start", "die", "stop", "destroy"}    # container events that show where the network ones fall


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


def events_since(host: str, since: float) -> list[dict[str, object]]:
    out = docker(host, "events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}",
                 "--format", "{{json .}}").stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def normalized(events: list[dict[str, object]]) -> list[str]:
    """Network events and the container anchors, with ids replaced by stable names (network name, container name
    or c<n> in order of appearance) so two daemons' streams compare."""
    names: dict[str, str] = {}

    def name_of(cid: str) -> str:
        return names.setdefault(cid, f"c{len(names)}")

    out = []
    for ev in events:
        actor = ev["Actor"]
        assert isinstance(actor, dict)
        attrs = dict(actor["Attributes"])
        if ev["Type"] == "container" and ev["Action"] in ANCHORS:
            out.append(f"container {ev['Action']} {name_of(str(actor['ID']))}")
        elif ev["Type"] == "network":
            assert ev["scope"] == "local" and len(str(actor["ID"])) == 64, ev
            container = attrs.pop("container", None)
            line = f"network {ev['Action']} {attrs.pop('name')} type={attrs.pop('type')}"
            if container is not None:
                assert len(container) == 64, ev
                line += f" container={name_of(container)}"
            assert not attrs, ev
            out.append(line)
    return out


def play(host: str) -> list[str]:
    time.sleep(0.3)         # after the events of seeding the images (a build's intermediate containers)
    since = time.time()
    for args in SCENARIO:
        docker(host, *args)
    time.sleep(0.3)
    return normalized(events_since(host, since))


@pytest.mark.interop
@pytest.mark.slow
def test_a_network_lifecycle_reports_the_events_dockerd_reports(b: PrivateBerthd, tmp_path: Path) -> None:
    theirs: list[str]
    with PrivateDockerd(bridge=True) as d:
        seed_images(d.host, tmp_path)
        theirs = play(d.host)
    ours = play(b.host)
    assert ours == theirs
    assert "network connect evnet type=bridge container=c0" in ours
    assert ours.count("network disconnect evnet2 type=bridge container=c0") == 3


def test_network_events_carry_the_network_id_and_can_be_filtered_by_network(b: PrivateBerthd) -> None:
    since = time.time() - 0.1
    net_id = b.docker("network", "create", "filtered").stdout.decode().strip()
    b.docker("network", "create", "other")
    try:
        b.docker("run", "--rm", "--network", "filtered", "busybox:latest", "true")
    finally:
        b.docker("network", "rm", "filtered", "other")
    out = b.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}",
                   "--filter", "network=filtered", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}").stdout.decode()
    assert out.splitlines() == [f"network {action} {net_id}" for action in ("create", "connect", "disconnect",
                                                                            "destroy")]


def test_prune_reports_a_destroy_per_network_and_a_failed_create_reports_nothing(b: PrivateBerthd) -> None:
    since = time.time() - 0.1
    b.docker("network", "create", "--subnet", "10.231.240.0/28", "pruned1")
    b.docker("network", "create", "--label", "k=v", "pruned2")
    failed = b.docker("network", "create", "--subnet", "10.231.240.0/28", "overlapping", check=False)
    assert failed.returncode != 0
    assert b.docker("network", "create", "pruned1", check=False).returncode != 0    # the name is taken
    b.docker("network", "prune", "-f")
    seen = [(e["Action"], e["Actor"]["Attributes"]["name"])             # type: ignore[index]
            for e in events_since(b.host, since) if e["Type"] == "network"]
    assert sorted(seen) == [("create", "pruned1"), ("create", "pruned2"), ("destroy", "pruned1"),
                            ("destroy", "pruned2")]
