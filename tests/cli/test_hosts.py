"""Daemon address parsing and precedence: -H > BERTH_HOST > DOCKER_HOST > default; which sockets berth owns."""

from __future__ import annotations

import pytest

from berth.client.hosts import DEFAULT_HOST, DaemonHost, HostSource, berth_owns, resolve_host
from berth.errors import InvalidArgument


@pytest.mark.parametrize(("text", "scheme", "address"), [
    ("unix:///run/berth/berth.sock", "unix", "/run/berth/berth.sock"),
    ("/var/run/docker.sock", "unix", "/var/run/docker.sock"),
    ("tcp://127.0.0.1:2376", "tcp", "127.0.0.1:2376"),
    ("tcp://localhost", "tcp", "localhost:2375"),
    ("http://10.0.0.1:80/", "tcp", "10.0.0.1:80"),
    ("tcp://[::1]:2375", "tcp", "[::1]:2375"),
    ("TCP://h:1", "tcp", "h:1"),
])
def test_parse_accepts_docker_host_forms(text: str, scheme: str, address: str) -> None:
    host = DaemonHost.parse(text)
    assert (host.scheme, host.address) == (scheme, address)


def test_tcp_host_and_port_split_out() -> None:
    host = DaemonHost.parse("tcp://[::1]:2375")
    assert (host.tcp_host, host.tcp_port) == ("::1", 2375)


@pytest.mark.parametrize("text", ["", "relative/path.sock", "unix://relative.sock", "tcp://", "tcp://h:99999",
                                  "tcp://h:abc", "ssh://user@host", "npipe:////./pipe/docker", "tcp://h:1/path"])
def test_parse_rejects_bad_addresses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        DaemonHost.parse(text)


def test_precedence_flag_then_berth_host_then_docker_host_then_default() -> None:
    env = {"BERTH_HOST": "unix:///b.sock", "DOCKER_HOST": "unix:///d.sock"}
    assert resolve_host("unix:///f.sock", env) == DaemonHost("unix", "/f.sock", HostSource.FLAG)
    assert resolve_host(None, env) == DaemonHost("unix", "/b.sock", HostSource.BERTH_HOST)
    assert resolve_host(None, {"DOCKER_HOST": "unix:///d.sock"}) == DaemonHost("unix", "/d.sock",
                                                                                HostSource.DOCKER_HOST)
    assert resolve_host(None, {"BERTH_HOST": "", "DOCKER_HOST": ""}) == DaemonHost.parse(DEFAULT_HOST)
    assert str(resolve_host(None, {})) == "unix:///run/berth/berth.sock"


def test_berth_starts_daemons_only_on_its_own_unix_sockets() -> None:
    assert berth_owns(resolve_host(None, {}))
    assert berth_owns(resolve_host(None, {"BERTH_HOST": "unix:///tmp/x.sock"}))
    assert berth_owns(resolve_host("unix:///tmp/berth-test.sock", {}))
    assert not berth_owns(resolve_host("unix:///var/run/docker.sock", {}))
    assert not berth_owns(resolve_host(None, {"DOCKER_HOST": "unix:///run/berth/berth.sock"}))
    assert not berth_owns(resolve_host(None, {"BERTH_HOST": "tcp://127.0.0.1:2375"}))
