"""Network isolation promises, through a private berthd and the real docker CLI (security-cases.md case 26,
CVE-2025-54388, CVE-2024-29018):

* a port published on 127.0.0.1 answers on the host's loopback and nowhere else: not from a machine next door
  that sends packets to 127.0.0.1 through the host (the test's own namespace behind a veth, standing in for a
  LAN neighbour), nor from a neighbour on the bridge;
* a container attached only to an `--internal` network gets no name resolved through the embedded DNS's
  forwarding (the query would carry data out of the sealed network); one on a normal network does.

Traffic goes only to loopback, to the test daemon's bridge and containers, and to a namespace the test made.
The forwarded queries of the DNS case are counted and dropped by an nft table of the test's own before they
leave the host (matched on the test's unique query name only).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root
HTTPD = "mkdir -p /www && echo only-local > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        for cid in daemon.docker("ps", "-aq").stdout.decode().split():
            daemon.docker("rm", "-f", cid, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def wait_http(url: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            return get(url, 2)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


class Neighbour:
    """A network namespace of the test's own, held by a sleeping `unshare -n` process, joined to the host by a
    veth: commands run in it through nsenter."""

    def __init__(self, pid: int, host_if: str, host_ip: str, ip: str) -> None:
        self.pid, self.host_if, self.host_ip, self.ip = pid, host_if, host_ip, ip

    def run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", *argv], capture_output=True, text=True,
                              timeout=timeout)

    def connect(self, ip: str, port: int, timeout: float = 2.0) -> str:
        """What a TCP client in the namespace gets from ip:port: the HTTP body or 'refused'/'timeout'."""
        code = ("import socket, sys\n"
                f"s = socket.socket(); s.settimeout({timeout})\n"
                "try:\n"
                f"    s.connect(({ip!r}, {port})); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
                "    data = b''\n"
                "    while chunk := s.recv(4096): data += chunk\n"
                "    print(data.split(b'\\r\\n\\r\\n', 1)[-1].decode().strip())\n"
                "except socket.timeout: print('timeout')\n"
                "except OSError as e: print('error', e.errno)\n")
        return self.run("python3", "-c", code).stdout.strip()


@pytest.fixture
def neighbour(b: PrivateBerthd) -> Iterator[Neighbour]:
    """A 'machine next door': its own netns, a /30 to the host in the spare /24 of the daemon's private block,
    and a route that sends 127.0.0.1 to the host (what an attacker on the LAN does by hand)."""
    spare = ipaddress.IPv4Network(b.bip, strict=False).network_address + 512
    host_ip, ip = str(spare + 1), str(spare + 2)
    host_if = f"vs{os.getpid():x}"[:15]
    holder = subprocess.Popen(["unshare", "-n", "sleep", "600"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        n = Neighbour(holder.pid, host_if, host_ip, ip)
        for argv in (["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns",
                      str(holder.pid)],
                     ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if], ["ip", "link", "set", host_if, "up"]):
            subprocess.run(argv, check=True)
        for argv in (["ip", "addr", "add", f"{ip}/30", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                     # the neighbour's own loopback stays down: 127.0.0.1 is routed to the host instead, and
                     # answers from 127.0.0.1 on eth0 are accepted (an attacker sets this on their own machine)
                     ["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
                     ["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
                     ["ip", "route", "add", "127.0.0.1/32", "via", host_ip, "dev", "eth0", "src", ip],
                     ["ip", "route", "add", str(ipaddress.IPv4Network(b.bip, strict=False)), "via", host_ip]):
            proc = n.run(*argv)
            assert proc.returncode == 0, (argv, proc.stderr)
        yield n
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def own_guard(b: PrivateBerthd) -> bool:
    table = subprocess.run(["nft", "list", "table", "ip", "berth_" + b.bridge], capture_output=True, text=True).stdout
    return 'iifname != "lo" ip daddr 127.0.0.0/8 drop' in table


def test_a_port_published_on_127_0_0_1_is_not_reachable_from_a_neighbour(b: PrivateBerthd,
                                                                          neighbour: Neighbour) -> None:
    local, public = free_port(), free_port()
    cid = b.docker("run", "-d", "-p", f"127.0.0.1:{local}:80", "-p", f"{public}:80", "busybox", "sh", "-c",
                   HTTPD).stdout.decode().strip()
    try:
        assert wait_http(f"http://127.0.0.1:{local}/") == "only-local\n"
        ip = json.loads(b.docker("inspect", cid).stdout)[0]["NetworkSettings"]["IPAddress"]
        # the neighbour does reach the host: the container directly and the port published on every address
        assert neighbour.connect(ip, 80) == "only-local"
        assert neighbour.connect(neighbour.host_ip, public) == "only-local"
        # ...but never the loopback-only port, neither through 127.0.0.1 nor through the host's other addresses
        assert neighbour.connect("127.0.0.1", local) != "only-local"
        assert neighbour.connect(neighbour.host_ip, local) != "only-local"
        gateway = b.bip.split("/")[0]
        assert neighbour.connect(gateway, local) != "only-local"
        # nor from a container on the same bridge that routes 127.0.0.1 to its gateway
        other = b.docker("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c",
                         f"ip route del 127.0.0.0/8 table local 2>/dev/null; ip route del local 127.0.0.1 table local"
                         f" 2>/dev/null; ip route add 127.0.0.1/32 via {gateway}; "
                         f"timeout 3 wget -qO- http://127.0.0.1:{local}/; echo rc=$?", check=False)
        assert b"only-local" not in other.stdout, other
        # the host itself still gets it on loopback
        assert get(f"http://127.0.0.1:{local}/") == "only-local\n"
        assert own_guard(b)
    finally:
        b.docker("rm", "-f", cid, check=False)


def test_published_port_conflicts_say_port_is_already_allocated(b: PrivateBerthd) -> None:
    port = free_port()
    cid = b.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60").stdout.decode().strip()
    try:
        proc = b.docker("run", "-d", "--name", "second", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60",
                        check=False)
        assert proc.returncode != 0
        assert b"port is already allocated" in proc.stderr or b"address already in use" in proc.stderr, proc.stderr
        state = json.loads(b.docker("inspect", "second").stdout)[0]["State"]
        assert not state["Running"]
    finally:
        b.docker("rm", "-f", cid, "second", check=False)


# -- CVE-2024-29018: no DNS forwarding out of an internal network --------------------------------------------

LABEL = "exfil" + os.urandom(3).hex()[:3]        # 8 bytes: the first label of every test query


def _host_upstreams() -> list[str]:
    out = []
    with open("/etc/resolv.conf") as f:
        lines = f.read().splitlines()
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and ":" not in words[1] \
                and not ipaddress.ip_address(words[1]).is_loopback:
            out.append(words[1])
    return out


@pytest.fixture
def dns_trap() -> Iterator[str]:
    """An nft table of the test's own that counts and drops, on the way out of this host, every UDP
    query whose name starts with the test's label: what berthd forwards never leaves. Yields the table name."""
    table = f"berth_sec_dns_{os.getpid()}"
    want = "0x08" + LABEL.encode().hex()
    script = (f"table inet {table} {{\n"
              "  chain out {\n"
              "    type filter hook output priority -300; policy accept;\n"
              f"    udp dport 53 @th,160,72 {want} counter drop\n"
              "  }\n}\n")
    proc = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    try:
        yield table
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)


def trapped(table: str) -> int:
    text = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", text))


@pytest.mark.skipif(not _host_upstreams(), reason="the host has no non-loopback resolver to forward to")
def test_a_container_on_an_internal_network_gets_no_forwarded_names(b: PrivateBerthd, dns_trap: str) -> None:
    b.docker("network", "create", "--internal", "sealed")
    b.docker("network", "create", "open")
    try:
        name = f"{LABEL}.secret-data.example.com"
        sealed = b.docker("run", "--rm", "--network", "sealed", "busybox", "sh", "-c",
                          f"nslookup -type=a {name} 127.0.0.11; echo rc=$?", check=False)
        out = sealed.stdout.decode()
        assert "rc=1" in out or "SERVFAIL" in out or "can't find" in out, out
        assert trapped(dns_trap) == 0, "berthd forwarded a query from a container on an internal network"
        # the sealed container still resolves names of its own network
        peer = b.docker("run", "-d", "--network", "sealed", "--name", "inside", "busybox", "sleep", "60")
        assert peer.returncode == 0
        found = b.docker("run", "--rm", "--network", "sealed", "busybox", "nslookup", "inside", "127.0.0.11",
                         check=False)
        assert b"Address" in found.stdout and found.returncode == 0, found
        # control: the same query from a normal user network is forwarded (and dropped by the trap)
        b.docker("run", "--rm", "--network", "open", "busybox", "sh", "-c",
                 f"nslookup -type=a {name} 127.0.0.11; true", check=False)
        assert trapped(dns_trap) >= 1, "the trap saw no forwarded query: it would not have caught a leak"
    finally:
        b.docker("rm", "-f", "inside", check=False)
        b.docker("network", "rm", "sealed", "open", check=False)


def test_a_container_cannot_send_to_the_hosts_loopback_services(b: PrivateBerthd) -> None:
    """CVE-2020-8558's class: the bridges have route_localnet=1 (for the 127.0.0.1 DNAT), so without a guard a
    container that routes 127.0.0.1 to its gateway reaches the host's loopback-only services (one-way at least:
    enough for UDP). The host's listener here is the test's own, on 127.0.0.1. (Its failure without the guard
    was not shown on the dev machine: other live berthds' tables already carried the same rule.)"""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    gateway = b.bip.split("/")[0]
    try:
        script = ("ip route del local 127.0.0.1 table local 2>/dev/null; ip route del local 127.0.0.0/8 table local "
                  f"2>/dev/null; ip route add 127.0.0.1/32 via {gateway} && "
                  f"for i in 1 2 3 4 5; do echo leak | nc -u -w 1 127.0.0.1 {port}; done; echo sent")
        proc = b.docker("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", script, check=False)
        assert b"sent" in proc.stdout, proc
        got = []
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                got.append(server.recvfrom(100))
            except TimeoutError:
                continue
        assert got == [], f"a container reached the host's 127.0.0.1:{port}: {got}"
        # the guard is the daemon's own (another berthd's table carries the same rule and would hide its absence)
        assert own_guard(b)
    finally:
        server.close()
