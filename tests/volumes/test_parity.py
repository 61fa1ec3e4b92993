"""The real docker CLI prints the same against berthd as against a real dockerd (20.10, both spoken to at API
1.41) for volumes: create, inspect, ls and its filters, rm, prune, the errors, and a container's Mounts and mount
options in inspect; ids, times and each daemon's own root replaced."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import Daemon, docker, seeded_daemon  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.slow]
V141 = {"DOCKER_API_VERSION": "1.41"}
_ID = re.compile(r"\b[0-9a-f]{64}\b")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def pair(seeded_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
         ) -> Iterator[tuple[str, PrivateBerthd]]:
    tar = tmp_path_factory.mktemp("parity") / "seed.tar"
    docker(seeded_daemon.host, "save", "-o", str(tar), seeded_daemon.images.busybox)
    with PrivateBerthd() as b:
        b.docker("load", "-i", str(tar))
        yield seeded_daemon.host, b


def _roots(pair: tuple[str, PrivateBerthd]) -> tuple[str, str]:
    host, b = pair
    info = json.loads(docker(host, "info", "--format", "{{json .DockerRootDir}}").stdout)
    return str(info), str(b.root)


def both(pair: tuple[str, PrivateBerthd], *args: str) -> tuple[str, str]:
    """Run on both; outputs (stdout + stderr) with ids, times and the daemons' roots replaced."""
    host, b = pair
    d = docker(host, *args, env=V141, check=False)
    o = docker(b.host, *args, env=V141, check=False)
    assert d.returncode == o.returncode, (args, d.stderr, o.stderr)
    droot, broot = _roots(pair)
    return _clean((d.stdout + d.stderr).decode(), droot), _clean((o.stdout + o.stderr).decode(), broot)


def _clean(text: str, root: str) -> str:
    return _TIME.sub("<time>", _ID.sub("<id>", text.replace(root, "<root>")))


def _same(pair: tuple[str, PrivateBerthd], *args: str) -> str:
    d, o = both(pair, *args)
    assert o == d, args
    return d


@pytest.fixture
def clean(pair: tuple[str, PrivateBerthd]) -> Iterator[tuple[str, PrivateBerthd]]:
    yield pair
    for host in (pair[0], pair[1].host):
        for cid in docker(host, "ps", "-aq").stdout.decode().split():
            docker(host, "rm", "-fv", cid, check=False)
        names = docker(host, "volume", "ls", "-q").stdout.decode().split()
        if names:
            docker(host, "volume", "rm", *names, check=False)


def test_volume_commands_print_what_dockerd_prints(clean: tuple[str, PrivateBerthd]) -> None:
    pair = clean
    _same(pair, "volume", "create", "--label", "team=a", "--label", "tier=b", "pa")
    _same(pair, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "pb")
    _same(pair, "volume", "create", "pa")                     # an existing one: returned as it is
    assert "<id>" in _same(pair, "volume", "create")
    _same(pair, "volume", "inspect", "pa", "pb")
    _same(pair, "volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Labels}} {{.Options}} {{.Scope}}", "pb")
    # (an anonymous volume of 64 random hex digits is listed too: no filter below may match hex by chance)
    for filters in ([], ["-f", "label=team"], ["-f", "label=team=a"], ["-f", "label=team=z"], ["-f", "name=p"], ["-f", "name=^pa$"], ["-f", "name=pb$"], ["-f", "name=["],
                    ["-f", "driver=local"], ["-f", "dangling=true"], ["-f", "dangling=false"], ["-q"],
                    ["--format", "{{.Name}}\t{{.Label \"team\"}}\t{{.Mountpoint}}"], ["-f", "bogus=1"],
                    ["-f", "dangling=maybe"]):
        _same(pair, "volume", "ls", *filters)
    for bad in (["create", "a/b"], ["create", "x"], ["create", "-o", "bogus=1", "x2"], ["create", "-d", "nfs", "x3"],
                ["create", "-o", "type=tmpfs", "x4"], ["inspect", "nosuch"], ["rm", "nosuch"], ["rm", "-f", "nosuch"]):
        _same(pair, "volume", *bad)
    _same(pair, "volume", "rm", "pa")
    _same(pair, "volume", "prune", "-f")       # API 1.41: every unused volume, named ones too
    _same(pair, "volume", "ls")


def test_container_mounts_in_inspect_match_dockerd(clean: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    pair = clean
    (tmp_path / "f").write_text("host\n")
    args = ["--name", "pc", "-v", "pv2:/data", "-v", "/anon", "-v", f"{tmp_path}:/h:ro", "-v", "pv4:/d4:nocopy",
            "--mount", f"type=bind,src={tmp_path},dst=/h2", "--mount", "type=volume,src=pv3,dst=/v3,volume-nocopy",
            "--mount", "type=volume,dst=/anon2", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
            "--tmpfs", "/t2:size=2m,uid=5", "busybox", "true"]
    d, o = both(pair, "create", *args)
    assert d == o
    docs = []
    for host in (pair[0], pair[1].host):
        doc: dict[str, Any] = json.loads(docker(host, "inspect", "pc").stdout)[0]
        root = _roots(pair)[0 if host == pair[0] else 1]
        mounts = sorted(doc["Mounts"], key=lambda m: m["Destination"])
        h = doc["HostConfig"]
        docs.append(json.loads(_clean(json.dumps({
            "Mounts": mounts, "Binds": sorted(h["Binds"]), "HostMounts": h["Mounts"], "Tmpfs": h["Tmpfs"],
            "VolumesFrom": h["VolumesFrom"], "Volumes": doc["Config"]["Volumes"]}), root)))
    assert docs[1] == docs[0]
    # (not from pc: dockerd 20.10 fails --volumes-from of a container with a --mount tmpfs with a 404)
    _same(pair, "create", "--name", "ps", "-v", "pv2:/data", "-v", "/anon", "-v", f"{tmp_path}:/h:ro", "busybox",
          "true")
    _same(pair, "create", "--name", "pd", "--volumes-from", "ps:ro", "busybox", "true")
    _same(pair, "create", "--name", "pe", "--volumes-from", "ps", "busybox", "true")
    for name in ("pd", "pe"):
        views = [sorted(json.loads(docker(host, "inspect", name).stdout)[0]["Mounts"], key=lambda m: m["Destination"])
                 for host in (pair[0], pair[1].host)]
        assert [[{k: v for k, v in m.items() if k not in ("Name", "Source")} for m in view] for view in views] == \
            [[{k: v for k, v in m.items() if k not in ("Name", "Source")} for m in views[0]]] * 2
    _same(pair, "rm", "-v", "pd", "pe", "ps")
    d, o = both(pair, "volume", "rm", "pv2")
    assert o == d and "volume is in use" in d
    _same(pair, "volume", "ls", "-f", "dangling=false")
    _same(pair, "rm", "-v", "pc")
    _same(pair, "volume", "ls")


def test_what_a_container_sees_matches_dockerd(clean: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    pair = clean
    (tmp_path / "f").write_text("host\n")
    _same(pair, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "tv")
    script = ("grep -E ' /(t|t2|tv) ' /proc/mounts | sort; stat -c '%a %u %g' /t /t2; cat /h/f; touch /h/x 2>&1; "
              "ls -lnR /usr /e2 | awk '{print $1, $2, $3, $4, $5, $9, $10, $11}'; df -k /t /tv | tail -2 | awk '{print $2}'")
    _same(pair, "run", "--rm", "-v", "tv:/tv", "-v", f"{tmp_path}:/h:ro", "-v", "cu:/usr", "-v", "/e2",
          "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "--tmpfs", "/t2:size=2m,uid=5,mode=755",
          "busybox", "sh", "-c", script)
    # the copy outlives the container (dates left out: dockerd's layer extraction leaves /usr/bin's mtime at the
    # time it extracted the image, berth's restores the archive's)
    _same(pair, "run", "--rm", "-v", "cu:/x", "busybox", "sh", "-c",
          "ls -lnR /x | awk '{print $1, $2, $3, $4, $5, $9, $10, $11}'")
    _same(pair, "create", "--name", "early", "-v", "early:/usr", "busybox", "true")   # copy-up at create
    _same(pair, "run", "--rm", "-v", "early:/x", "busybox", "sh", "-c", "ls /x/bin | wc -l")
    # (not /etc: dockerd's copy also takes the hostname, hosts, resolv.conf and mtab of its init layer)
