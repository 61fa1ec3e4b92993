"""testcontainers-python against berthd (DOCKER_HOST pointing at a private berthd, Ryuk disabled: its image comes
from Docker Hub, which these machines cannot reach).

testcontainers publishes an exposed port by asking for HostPort "" and reads the port the daemon picked back from
inspect; its HTTP wait strategy and the test then fetch a page from 127.0.0.1:<that port>. A second test puts two
containers on a network testcontainers creates (with its labels) and has one reach the other by its alias.
Nothing may be left afterwards: no container, network, veth or DNAT rule.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root, pytest.mark.interop]

HTTPD = ["sh", "-c", "mkdir -p /www && echo page from $(hostname) > /www/index.html && echo serving && "
         "exec httpd -f -p 8080 -h /www"]


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


@pytest.fixture
def tc(b: PrivateBerthd, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """testcontainers configured for berthd: its client from DOCKER_HOST, no Ryuk, and the host it connects to is
    127.0.0.1 with the mapped port (testcontainers would pick a bridge gateway where it finds /.dockerenv)."""
    from testcontainers.core.config import ConnectionMode, testcontainers_config
    monkeypatch.setenv("DOCKER_HOST", b.host)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    monkeypatch.setattr(testcontainers_config, "tc_host_override", "127.0.0.1")
    monkeypatch.setattr(testcontainers_config, "connection_mode_override", ConnectionMode.docker_host)
    before = kernel_state(b)
    yield
    assert b.docker("ps", "-aq").stdout == b""
    assert b.docker("network", "ls", "-q", "--filter", "type=custom").stdout == b""
    assert kernel_state(b) == before


def kernel_state(b: PrivateBerthd) -> dict[str, list[str]]:
    """The veths on the daemon's bridges and the DNAT rules of its nft table."""
    veths = []
    for record in (b.root / "networks").glob("*.json"):
        bridge = json.loads(record.read_text()).get("bridge")
        if bridge:
            text = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                                  text=True).stdout
            veths += [line.split(":")[1].strip() for line in text.splitlines()]
    table = subprocess.run(["nft", "list", "table", "ip", "berth_" + b.bridge], capture_output=True, text=True).stdout
    return {"veths": sorted(veths), "dnat": sorted(line.strip() for line in table.splitlines() if "dnat" in line)}


def test_an_exposed_port_is_mapped_to_a_random_host_port_read_back_from_inspect(b: PrivateBerthd, tc: None) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    container = (DockerContainer("busybox:latest").with_exposed_ports(8080).with_command(HTTPD)
                 .waiting_for(HttpWaitStrategy(8080).for_response_predicate(lambda body: "page from" in body)))
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(8080)
        assert host == "127.0.0.1" and 1024 <= port <= 65535
        cid = container.get_wrapped_container().id
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.read().decode() == f"page from {cid[:12]}\n"
        inspect = json.loads(b.docker("inspect", cid).stdout)[0]
        # what testcontainers asked for, and what berthd picked
        assert inspect["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": ""}]}
        assert str(port) in [p["HostPort"] for p in inspect["NetworkSettings"]["Ports"]["8080/tcp"]]
        assert b"serving" in container.get_logs()[0]
        result = container.exec(["cat", "/www/index.html"])
        assert (result.exit_code, result.output) == (0, f"page from {cid[:12]}\n".encode())


def test_containers_on_a_testcontainers_network_reach_each_other_by_alias(b: PrivateBerthd, tc: None) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    with Network() as net:
        inspect = json.loads(b.docker("network", "inspect", net.name).stdout)[0]
        assert inspect["Labels"].get("org.testcontainers") == "true"
        server = (DockerContainer("busybox:latest").with_command(HTTPD).with_network(net)
                  .with_network_aliases("web").waiting_for(LogMessageWaitStrategy("serving")))
        client = DockerContainer("busybox:latest").with_command(["sleep", "300"]).with_network(net)
        with server, client:
            sid = server.get_wrapped_container().id
            result = client.exec(["wget", "-qO-", "http://web:8080/"])
            assert (result.exit_code, result.output) == (0, f"page from {sid[:12]}\n".encode())
            missing = client.exec(["wget", "-qO-", "-T", "2", "http://nosuchalias:8080/"])
            assert missing.exit_code != 0
