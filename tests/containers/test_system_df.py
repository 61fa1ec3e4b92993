"""GET /system/df and `docker system df [-v]` against berthd: layer sharing between images, container sizes,
volume usage, the type filter; its JSON keys against a real dockerd's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.berthd import PrivateBerthd
from tests.containers.extra_daemon import b, run_d  # noqa: F401
from tests.peers import Daemon, seeded_daemon  # noqa: F401
from tests.peers import docker as docker_cli

pytestmark = pytest.mark.root


def _df(daemon: PrivateBerthd, query: str = "") -> dict[str, Any]:
    status, body = daemon.api("GET", "/system/df" + query)
    assert status == 200, body
    out: dict[str, Any] = json.loads(body)
    return out


def test_df_counts_shared_layers_containers_and_volumes(b: PrivateBerthd) -> None:  # noqa: F811
    b.docker("run", "--name", "dfsrc", "-v", "dfvol:/data", "busybox", "sh", "-c",
             "head -c 3000 /dev/zero > /data/z; head -c 700 /dev/zero > /layer")
    b.docker("commit", "dfsrc", "dfimage:1")
    try:
        df = _df(b)
        images = {i["RepoTags"][0]: i for i in df["Images"]}
        base, child = images["busybox:latest"], images["dfimage:1"]
        assert child["Size"] == base["Size"] + 700
        assert base["SharedSize"] == child["SharedSize"] == base["Size"]     # the busybox layer, in both
        assert (base["Containers"], child["Containers"]) == (1, 0)
        assert df["LayersSize"] == base["Size"] + 700
        (src,) = [c for c in df["Containers"] if c["Names"] == ["/dfsrc"]]
        assert src["SizeRw"] == 700 and src["SizeRootFs"] == base["Size"] + 700
        (vol,) = [v for v in df["Volumes"] if v["Name"] == "dfvol"]
        assert vol["UsageData"] == {"Size": 3000, "RefCount": 1}
        assert vol["Driver"] == "local" and vol["Mountpoint"].endswith("/dfvol/_data")
        assert df["BuildCache"] == [] and df["BuilderSize"] == 0
        assert set(_df(b, "?type=volume")) == {"Volumes"}
        assert set(_df(b, "?type=image&type=container")) == {"LayersSize", "Images", "Containers"}
        status, body = b.api("GET", "/system/df?type=everything")
        assert status == 400 and b"everything" in body
    finally:
        b.docker("rm", "-f", "dfsrc")
        b.docker("rmi", "dfimage:1", check=False)
        b.docker("volume", "rm", "dfvol", check=False)


def test_docker_system_df_prints_sane_tables(b: PrivateBerthd) -> None:  # noqa: F811
    run_d(b, "dfrun", "-v", "dfvol2:/v", "busybox", "sh", "-c", "head -c 2000 /dev/zero > /v/z; sleep 1000")
    try:
        for _ in range(50):
            if b.docker("exec", "dfrun", "test", "-s", "/v/z", check=False).returncode == 0:
                break
        out = b.docker("system", "df", "--format", "{{json .}}").stdout.decode()
        rows = {r["Type"]: r for r in map(json.loads, out.splitlines())}
        assert (rows["Images"]["TotalCount"], rows["Images"]["Active"]) == ("1", "1")
        assert rows["Images"]["Size"].endswith("MB")
        assert (rows["Containers"]["TotalCount"], rows["Containers"]["Active"]) == ("1", "1")
        assert (rows["Local Volumes"]["TotalCount"], rows["Local Volumes"]["Size"]) == ("1", "2kB")
        assert rows["Build Cache"]["Size"] == "0B"
        verbose = b.docker("system", "df", "-v").stdout.decode()
        assert "Images space usage:" in verbose and "Containers space usage:" in verbose
        assert any(line.startswith("dfvol2") and line.split()[1:] == ["1", "2kB"] for line in verbose.splitlines())
        assert any(line.startswith("busybox ") and line.split()[-1] == "1" for line in verbose.splitlines())
    finally:
        b.docker("rm", "-f", "dfrun")
        b.docker("volume", "rm", "dfvol2", check=False)


@pytest.mark.interop
@pytest.mark.slow
def test_df_json_has_dockerds_keys(b: PrivateBerthd, seeded_daemon: Daemon) -> None:  # noqa: F811
    docker_cli(seeded_daemon.host, "create", "--name", "dfcmp", seeded_daemon.images.busybox, "true")
    b.docker("create", "--name", "dfcmp", "busybox", "true")
    try:
        theirs = json.loads(docker_cli(seeded_daemon.host, "system", "df", "--format", "{{json .}}").stdout
                            .decode().splitlines()[0])
        ours = json.loads(b.docker("system", "df", "--format", "{{json .}}").stdout.decode().splitlines()[0])
        assert set(ours) == set(theirs)
        status, body = b.api("GET", "/v1.41/system/df")
        df = json.loads(body)
        assert {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"} <= set(df)
        assert {"Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags", "SharedSize",
                "Size", "VirtualSize"} <= set(df["Images"][0])
        assert {"Id", "Names", "Image", "ImageID", "Command", "Created", "SizeRootFs", "State", "Status"} <= \
            set(df["Containers"][0])
    finally:
        docker_cli(seeded_daemon.host, "rm", "-f", "dfcmp", check=False)
        b.docker("rm", "-f", "dfcmp")
