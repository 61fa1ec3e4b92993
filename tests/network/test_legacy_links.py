"""Legacy links on the default bridge (`docker run --link`, compose's version-1 files): the /etc/hosts line and the
environment variables dockerd gives the linking container, compared with a real dockerd's; the variables' rules
(berth.engine.linkenv) as a pure function."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.engine.linkenv import link_env
from berth.network.model import Link
from tests.berthd import PrivateBerthd
from tests.peers import PrivateDockerd, docker, seed_images

IP = "10.1.2.3"


def test_one_port_gives_the_port_variables_the_name_and_the_linked_containers_env() -> None:
    assert link_env("app", Link("web", "db"), [(5432, "tcp")], ["POSTGRES_DB=x", "PATH=/bin", "HOME=/", "E=a=b"],
                    IP) == [
        f"DB_PORT=tcp://{IP}:5432", f"DB_PORT_5432_TCP=tcp://{IP}:5432", f"DB_PORT_5432_TCP_ADDR={IP}",
        "DB_PORT_5432_TCP_PORT=5432", "DB_PORT_5432_TCP_PROTO=tcp", "DB_NAME=/app/db", "DB_ENV_POSTGRES_DB=x",
        "DB_ENV_E=a=b"]


def test_three_consecutive_ports_also_give_a_range_and_the_default_port_is_the_lowest_tcp_one() -> None:
    env = link_env("app", Link("web", "my-db"), [(9002, "tcp"), (53, "udp"), (9000, "tcp"), (9001, "tcp"),
                                                 (53, "tcp")], [], IP)
    assert env[0] == f"MY_DB_PORT=tcp://{IP}:53"
    assert f"MY_DB_PORT_9000_TCP_START=tcp://{IP}:9000" in env and "MY_DB_PORT_9000_TCP_PORT_END=9002" in env
    assert f"MY_DB_PORT_9001_TCP=tcp://{IP}:9001" in env and "MY_DB_PORT_53_UDP_PROTO=udp" in env
    assert not any("_53_TCP_START" in e for e in env)          # two consecutive numbers are no range
    assert env[-1] == "MY_DB_NAME=/app/my-db"


def test_no_exposed_port_gives_only_the_name() -> None:
    assert link_env("a", Link("b", "b"), [], [], IP) == ["B_NAME=/a/b"]


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


def linked_view(host: str) -> tuple[list[str], str]:
    """The sorted environment and the link's /etc/hosts line of a container linked to another, addresses and the
    linked container's hostname replaced by placeholders."""
    docker(host, "run", "-d", "--name", "lweb", "--hostname", "lwebhost", "-e", "FOO=bar", "-e", "PATH=/bin",
           "-e", "SP=a b=c", "--expose", "8080", "--expose", "9000-9002", "--expose", "53/udp", "--expose", "53/tcp",
           "busybox:latest", "sleep", "300")
    try:
        out = docker(host, "run", "--rm", "--name", "linker", "--link", "lweb:my-db", "-e", "MY_DB_ENV_FOO=own",
                     "busybox:latest", "sh", "-c", "env; echo ---; grep my-db /etc/hosts").stdout.decode()
    finally:
        docker(host, "rm", "-f", "lweb")
    env_text, _, hosts = out.partition("---\n")
    env = sorted(line for line in env_text.splitlines() if not line.startswith(("HOSTNAME=", "HOME=")))
    ip = re.compile(r"\d+\.\d+\.\d+\.\d+")
    return [ip.sub("IP", e) for e in env], ip.sub("IP", hosts.strip())


@pytest.mark.root
@pytest.mark.interop
@pytest.mark.slow
def test_a_links_hosts_line_and_variables_are_dockerds(b: PrivateBerthd, tmp_path: Path) -> None:
    with PrivateDockerd(bridge=True) as d:
        seed_images(d.host, tmp_path)
        theirs = linked_view(d.host)
    ours = linked_view(b.host)
    assert ours == theirs
    assert "MY_DB_ENV_FOO=own" in ours[0] and "MY_DB_PORT_9000_TCP_END=tcp://IP:9002" in ours[0]
    assert ours[1] == "IP\tmy-db lwebhost lweb"
