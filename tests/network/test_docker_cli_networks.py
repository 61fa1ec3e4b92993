"""Networks through berthd, driven by the real docker CLI: user networks with names and aliases, published ports
from the host's 127.0.0.1, -P, port conflicts, live restore of published ports, none/host/container modes,
outbound traffic to a server on the host, connect/disconnect, /etc files, and the bad inputs.

Traffic goes only to loopback, to the bridge gateway address of the test's own daemon, and to its containers.
After every test nothing of it may remain: no veth on its bridges, no netns mount, no address allocated, no DNAT.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = pytest.mark.root
HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
        made = bridges(daemon)
    # the daemon's cleanup removes its bridges and its nft table, even though berthd was killed with -9 once
    for br in made:
        assert not Path("/sys/class/net", br).exists(), br
    assert subprocess.run(["nft", "list", "table", "ip", "berth_" + daemon.bridge], capture_output=True).returncode != 0


def bridges(b: PrivateBerthd) -> list[str]:
    out = []
    for record in (b.root / "networks").glob("*.json"):
        name = json.loads(record.read_text()).get("bridge")
        if name:
            out.append(name)
    return out


def leftovers(b: PrivateBerthd) -> dict[str, list[str]]:
    """What the test's containers could leave: veths on the daemon's bridges, netns mounts, allocated addresses,
    DNAT rules."""
    veths = []
    for br in bridges(b):
        text = subprocess.run(["ip", "-o", "link", "show", "master", br], capture_output=True, text=True).stdout
        veths += [line.split(":")[1].strip() for line in text.splitlines()]
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(b.exec_root / "netns"))]
    endpoints = []
    for record in (b.root / "networks").glob("*.json"):
        for cid, m in json.loads(record.read_text())["members"].items():
            if m.get("endpoint"):
                endpoints.append(f"{cid[:12]} {m['endpoint']['ip']}")
    table = subprocess.run(["nft", "list", "table", "ip", "berth_" + b.bridge], capture_output=True,
                           text=True).stdout
    dnats = [line.strip() for line in table.splitlines() if "dnat to" in line]
    return {k: v for k, v in {"veths": veths, "mounts": mounts, "endpoints": endpoints, "dnats": dnats}.items() if v}


@pytest.fixture(autouse=True)
def clean(b: PrivateBerthd) -> Iterator[None]:
    yield
    made = bridges(b)
    ids = b.docker("ps", "-aq").stdout.decode().split()
    if ids:
        b.docker("rm", "-f", *ids, check=False)
    for net in b.docker("network", "ls", "-q", "--filter", "type=custom").stdout.decode().split():
        b.docker("network", "rm", net, check=False)
    deadline = time.monotonic() + 5
    while (left := leftovers(b)) and time.monotonic() < deadline:
        time.sleep(0.1)     # a freed namespace takes its veth with it a moment later
    assert left == {}
    gone = set(made) - set(bridges(b))                  # the removed networks' bridges are gone too
    assert [br for br in gone if Path("/sys/class/net", br).exists()] == []


def run(b: PrivateBerthd, *args: str) -> subprocess.CompletedProcess[bytes]:
    return b.docker("run", *args, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def get(url: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def inspect(b: PrivateBerthd, ref: str) -> dict[str, object]:
    value = json.loads(b.docker("inspect", ref).stdout)[0]
    assert isinstance(value, dict)
    return value


def test_two_containers_on_a_user_network_reach_each_other_by_name_and_alias(b: PrivateBerthd) -> None:
    b.docker("network", "create", "front")
    run(b, "-d", "--name", "srv", "--network", "front", "--network-alias", "web", "--hostname", "srvhost",
        "busybox", "sh", "-c", HTTPD)
    for name in ("srv", "web", "srv.front"):
        proc = run(b, "--rm", "--network", "front", "busybox", "wget", "-qO-", f"http://{name}/")
        assert (proc.returncode, proc.stdout) == (0, b"hello from srvhost\n"), proc.stderr
    b.docker("rename", "srv", "server")
    proc = run(b, "--rm", "--network", "front", "busybox", "wget", "-qO-", "http://server/")
    assert proc.stdout == b"hello from srvhost\n", proc.stderr
    b.docker("rename", "server", "srv")
    resolv = run(b, "--rm", "--network", "front", "busybox", "cat", "/etc/resolv.conf").stdout.decode()
    assert resolv.startswith("nameserver 127.0.0.11\n")
    settings = inspect(b, "srv")["NetworkSettings"]
    assert isinstance(settings, dict)
    front = settings["Networks"]["front"]
    net = json.loads(b.docker("network", "inspect", "front").stdout)[0]
    assert front["NetworkID"] == net["Id"] and front["IPAddress"] and front["Gateway"] == net["IPAM"]["Config"][0]["Gateway"]
    assert "web" in front["Aliases"] and front["DNSNames"][:2] == ["srv", "web"]
    assert settings["IPAddress"] == ""          # the top-level fields are the default bridge's
    assert list(net["Containers"]) == [inspect(b, "srv")["Id"]]
    # a container on the default bridge is isolated from the user network
    other = run(b, "--rm", "busybox", "sh", "-c", f"timeout 2 wget -qO- http://{front['IPAddress']}/; echo rc=$?")
    assert other.stdout == b"rc=143\n", other       # no answer at all: ended by timeout's SIGTERM


def test_a_published_port_answers_on_the_hosts_loopback(b: PrivateBerthd) -> None:
    port = free_port()
    cid = run(b, "-d", "-p", f"{port}:80", "--hostname", "pub", "busybox", "sh", "-c", HTTPD).stdout.decode().strip()
    assert get(f"http://127.0.0.1:{port}/") == "hello from pub\n"
    curl = subprocess.run(["curl", "-sS", "-m", "5", f"http://127.0.0.1:{port}/"], capture_output=True)
    assert curl.stdout == b"hello from pub\n", curl.stderr
    ports = inspect(b, cid)["NetworkSettings"]["Ports"]  # type: ignore[index]
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert f"0.0.0.0:{port}->80/tcp" in b.docker("ps").stdout.decode()
    # through the host's address on the bridge: from another container, and hairpinned from the container itself
    gateway = b.bip.split("/")[0]
    assert run(b, "--rm", "busybox", "wget", "-qO-", f"http://{gateway}:{port}/").stdout == b"hello from pub\n"
    own = b.docker("exec", cid, "timeout", "5", "wget", "-qO-", f"http://{gateway}:{port}/", check=False)
    assert own.stdout == b"hello from pub\n", own
    b.docker("stop", "-t", "1", cid)
    assert leftovers(b).get("dnats") is None    # stopping frees the port and the address


def test_publish_all_takes_random_ports_shown_in_inspect_and_docker_port(b: PrivateBerthd) -> None:
    cid = run(b, "-d", "-P", "--expose", "80", "--expose", "81/udp", "--hostname", "rnd", "busybox", "sh", "-c",
              HTTPD).stdout.decode().strip()
    ports = inspect(b, cid)["NetworkSettings"]["Ports"]  # type: ignore[index]
    tcp = ports["80/tcp"][0]["HostPort"]
    assert int(tcp) > 0 and int(ports["81/udp"][0]["HostPort"]) > 0
    assert b.docker("port", cid, "80").stdout.decode().strip() == f"0.0.0.0:{tcp}"
    assert get(f"http://127.0.0.1:{tcp}/") == "hello from rnd\n"
    # HostPort "" through the API, as testcontainers sends it
    body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "30"], "ExposedPorts": {"80/tcp": {}},
                       "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]}}}).encode()
    status, raw = b.api("POST", "/v1.44/containers/create", body)
    assert status == 201, raw
    tc = json.loads(raw)["Id"]
    assert b.api("POST", f"/v1.44/containers/{tc}/start")[0] == 204
    got = json.loads(b.api("GET", f"/v1.44/containers/{tc}/json")[1])["NetworkSettings"]["Ports"]["80/tcp"]
    assert int(got[0]["HostPort"]) > 0 and got[0]["HostPort"] != tcp


def test_the_same_host_port_twice_gets_dockers_error_and_leaves_nothing(b: PrivateBerthd) -> None:
    port = free_port()
    run(b, "-d", "--name", "first", "-p", f"{port}:80", "busybox", "sleep", "60")
    proc = run(b, "-d", "--name", "second", "-p", f"{port}:80", "busybox", "sleep", "60")
    assert proc.returncode != 0
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated".encode() in proc.stderr
    assert inspect(b, "second")["State"]["Status"] == "created"  # type: ignore[index]
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "ExposedPorts": {"80/tcp": {}},
                       "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": str(port)}]}}}).encode()
    status, raw = b.api("POST", "/v1.44/containers/create?name=third", body)
    assert status == 201, raw
    status, raw = b.api("POST", "/v1.44/containers/third/start")
    assert status == 500 and b"port is already allocated" in raw      # Docker's status for it
    b.docker("rm", "-f", "second", "third")
    left = leftovers(b)
    assert len(left["endpoints"]) == 1 and len(left["dnats"]) == 1       # only the first container's


def test_a_port_a_host_process_holds_is_refused(b: PrivateBerthd) -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run(b, "--rm", "-p", f"{port}:80", "busybox", "true")
    assert proc.returncode != 0 and b"address already in use" in proc.stderr


@pytest.mark.slow
def test_published_ports_answer_while_berthd_is_killed_and_after_it_restarts(b: PrivateBerthd) -> None:
    port = free_port()
    cid = run(b, "-d", "-p", f"127.0.0.1:{port}:80", "--hostname", "live", "busybox", "sh", "-c",
              HTTPD).stdout.decode().strip()
    ip = inspect(b, cid)["NetworkSettings"]["IPAddress"]  # type: ignore[index]
    assert get(f"http://127.0.0.1:{port}/") == "hello from live\n"
    quitter = run(b, "-d", "busybox", "sh", "-c", "sleep 1").stdout.decode().strip()
    b.kill()
    try:
        assert get(f"http://127.0.0.1:{port}/") == "hello from live\n"
        time.sleep(1.5)          # the second container exits while berthd is down
    finally:
        b.start()
    assert get(f"http://127.0.0.1:{port}/") == "hello from live\n"
    assert inspect(b, cid)["NetworkSettings"]["IPAddress"] == ip  # type: ignore[index]
    assert inspect(b, quitter)["State"]["Status"] == "exited"  # type: ignore[index]
    endpoints = leftovers(b)["endpoints"]
    assert endpoints == [f"{cid[:12]} {ip}"]     # the exited one's address was released at reconcile
    fresh = run(b, "-d", "busybox", "sleep", "30").stdout.decode().strip()
    assert inspect(b, fresh)["NetworkSettings"]["IPAddress"] != ip  # type: ignore[index]


def test_network_none_has_only_loopback(b: PrivateBerthd) -> None:
    proc = run(b, "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
    assert proc.stdout.split() == [b"lo"]
    run(b, "-d", "--name", "alone", "--network", "none", "busybox", "sleep", "60")
    nets = inspect(b, "alone")["NetworkSettings"]["Networks"]  # type: ignore[index]
    none_id = json.loads(b.docker("network", "inspect", "none").stdout)[0]["Id"]
    assert list(nets) == ["none"] and nets["none"]["NetworkID"] == none_id and nets["none"]["IPAddress"] == ""


def test_network_host_sees_the_hosts_interfaces(b: PrivateBerthd) -> None:
    proc = run(b, "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
    seen = set(proc.stdout.decode().split())
    # other tests on this machine add and remove links meanwhile: compare the stable ones
    assert {"lo", "eth0", b.bridge} <= seen
    assert {p.name for p in Path("/sys/class/net").iterdir() if not p.name.startswith(("veth", "bb", "br-"))} <= seen
    files = run(b, "--rm", "--network", "host", "--add-host", "extra:10.1.2.3", "busybox", "cat", "/etc/hosts",
                "/etc/resolv.conf").stdout.decode()
    assert files.startswith(Path("/etc/hosts").read_text().rstrip("\n") + "\n10.1.2.3\textra\n")
    assert files.endswith(Path("/etc/resolv.conf").read_text())


def test_network_container_shares_the_other_containers_namespace(b: PrivateBerthd) -> None:
    run(b, "-d", "--name", "owner", "busybox", "sleep", "60")
    ip = inspect(b, "owner")["NetworkSettings"]["IPAddress"]  # type: ignore[index]
    proc = run(b, "--rm", "--network", "container:owner", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    assert f"inet {ip}/".encode() in proc.stdout
    shared = run(b, "--rm", "--network", "container:owner", "busybox", "cat", "/etc/hosts").stdout.decode()
    assert f"{ip}\t" in shared                   # the other container's names, as Docker copies them
    assert run(b, "--rm", "--network", "container:nosuch", "busybox", "true").returncode != 0


def test_a_container_reaches_a_server_the_host_runs_on_the_bridge_gateway(b: PrivateBerthd) -> None:
    gateway = b.bip.split("/")[0]
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.client_address[0])
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"from the host\n")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((gateway, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = run(b, "--rm", "busybox", "wget", "-qO-", f"http://{gateway}:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.stdout == b"from the host\n", proc.stderr
    assert seen and seen[0].startswith(gateway.rsplit(".", 1)[0] + ".")
    rules = subprocess.run(["nft", "list", "table", "ip", "berth_" + b.bridge], capture_output=True, text=True).stdout
    assert f'oifname != "{b.bridge}" masquerade' in rules


def test_user_network_lifecycle_ls_inspect_ip_range_internal_rm_and_prune(b: PrivateBerthd) -> None:
    pool = b.pool.split(",")[0].split("=")[1]           # the daemon's private /22
    base = pool.rsplit(".", 2)[0]
    third = int(pool.split(".")[2]) + 3
    subnet, gateway, ip_range = f"{base}.{third}.0/24", f"{base}.{third}.254", f"{base}.{third}.128/25"
    nid = b.docker("network", "create", "--subnet", subnet, "--gateway", gateway, "--ip-range", ip_range,
                   "--label", "team=berth", "back").stdout.decode().strip()
    b.docker("network", "create", "--internal", "sealed")
    listed = b.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.decode().split("\n")
    assert {"bridge bridge", "host host", "none null", "back bridge", "sealed bridge"} <= set(listed)
    info = json.loads(b.docker("network", "inspect", "back").stdout)[0]
    assert info["Id"] == nid and info["Labels"] == {"team": "berth"}
    assert info["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": gateway, "IPRange": ip_range}]
    run(b, "-d", "--name", "ranged", "--network", "back", "busybox", "sleep", "60")
    run(b, "-d", "--name", "fixed", "--network", "back", "--ip", f"{base}.{third}.7", "--mac-address",
        "02:42:de:ad:be:ef", "busybox", "sleep", "60")
    ranged = inspect(b, "ranged")["NetworkSettings"]["Networks"]["back"]  # type: ignore[index]
    assert ranged["IPAddress"] == f"{base}.{third}.129" and ranged["Gateway"] == gateway
    fixed = run(b, "--rm", "--network", "container:fixed", "busybox", "ip", "-o", "link", "show", "eth0").stdout
    assert b"02:42:de:ad:be:ef" in fixed
    proc = b.docker("network", "rm", "back", check=False)
    assert proc.returncode != 0 and b"has active endpoints" in proc.stderr
    sealed = run(b, "--rm", "--network", "sealed", "busybox", "ip", "route")
    assert b"default" not in sealed.stdout              # internal: no way out
    b.docker("rm", "-f", "ranged", "fixed")
    assert b.docker("network", "prune", "-f").returncode == 0
    assert b.docker("network", "ls", "-q", "--filter", "type=custom").stdout == b""


def test_connect_and_disconnect_a_running_container(b: PrivateBerthd) -> None:
    b.docker("network", "create", "extra")
    run(b, "-d", "--name", "roamer", "busybox", "sleep", "60")
    b.docker("network", "connect", "--alias", "rover", "extra", "roamer")
    nets = inspect(b, "roamer")["NetworkSettings"]["Networks"]  # type: ignore[index]
    assert set(nets) == {"bridge", "extra"} and "rover" in nets["extra"]["Aliases"]
    ip = nets["extra"]["IPAddress"]
    inside = b.docker("exec", "roamer", "ip", "-o", "-4", "addr").stdout.decode()
    assert f"eth1    inet {ip}/" in inside.replace("\t", " ").replace("  ", " ") or f"inet {ip}/" in inside
    got = run(b, "--rm", "--network", "extra", "busybox", "ping", "-c", "1", "-W", "2", "rover")
    assert got.returncode == 0, got.stdout + got.stderr
    b.docker("network", "disconnect", "extra", "roamer")
    assert set(inspect(b, "roamer")["NetworkSettings"]["Networks"]) == {"bridge"}  # type: ignore[index]
    assert f"inet {ip}/" not in b.docker("exec", "roamer", "ip", "-o", "-4", "addr").stdout.decode()


def test_hosts_and_resolv_conf_follow_the_options(b: PrivateBerthd) -> None:
    gateway = b.bip.split("/")[0]
    proc = run(b, "--rm", "--hostname", "named", "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway",
               "--dns", "10.9.9.9", "--dns-search", "example.test", "--dns-option", "ndots:2", "busybox", "sh", "-c",
               "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname -i")
    hosts, resolv, own = proc.stdout.decode().split("---\n")
    assert "10.1.2.3\tdb\n" in hosts and f"{gateway}\tgw\n" in hosts
    assert f"{own.strip()}\tnamed\n" in hosts
    assert resolv == "nameserver 10.9.9.9\nsearch example.test\noptions ndots:2\n"


def test_bad_inputs_get_clear_errors_and_leave_nothing(b: PrivateBerthd) -> None:
    pool = b.pool.split(",")[0].split("=")[1]
    b.docker("network", "create", "--subnet", pool, "wide")
    proc = b.docker("network", "create", "--subnet", pool.replace("/22", "/24"), "inside", check=False)
    assert proc.returncode != 0 and b"Pool overlaps with other one on this address space" in proc.stderr
    proc = b.docker("network", "create", "wide", check=False)
    assert proc.returncode != 0 and b"network with name wide already exists" in proc.stderr
    proc = run(b, "--rm", "--network", "nosuch", "busybox", "true")
    assert proc.returncode != 0 and b"network nosuch not found" in proc.stderr
    for spec, text in (("70000:80", b"70000"), ("a:b", b"b")):
        proc = run(b, "--rm", "-p", spec, "busybox", "true")
        assert proc.returncode != 0 and b"invalid" in proc.stderr.lower() and text in proc.stderr, proc.stderr
    body = json.dumps({"Image": "busybox", "Cmd": ["true"],
                       "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}}).encode()
    status, raw = b.api("POST", "/v1.44/containers/create", body)
    assert status == 400 and b"invalid hostPort: 70000" in raw
    assert b.api("GET", "/v1.44/networks/nosuch")[0] == 404
    assert b.api("POST", "/v1.44/networks/create", b'{"Name": "../etc"}')[0] == 400
    assert b.api("POST", "/v1.44/networks/create", b'{"Name": "bridge"}')[0] == 403
    assert b.api("POST", "/v1.44/networks/create", b'{"Name": "x", "Driver": "overlay"}')[0] == 404
    assert b.api("DELETE", "/v1.44/networks/bridge")[0] == 403
    assert b.api("POST", "/v1.44/networks/create", b'{"Name": "x", "IPAM": {"Config": [{"Subnet": "nope"}]}}')[0] == 400
    assert b.docker("ps", "-aq").stdout == b""


def test_network_list_filters(b: PrivateBerthd) -> None:
    b.docker("network", "create", "--label", "k=v", "labelled")
    names = b.docker("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").stdout.split()
    assert names == [b"labelled"]
    assert b.docker("network", "ls", "--filter", "label=k=v", "--format", "{{.Name}}").stdout.split() == [b"labelled"]
    assert b.docker("network", "ls", "--filter", "name=label", "-q").stdout.strip() != b""
    builtin = b.docker("network", "ls", "--filter", "type=builtin", "--format", "{{.Name}}").stdout.split()
    assert sorted(builtin) == [b"bridge", b"host", b"none"]


def test_composes_disconnect_connect_before_start_and_dns_after_a_daemon_restart(b: PrivateBerthd) -> None:
    """docker-compose 1.29's sequence: create on the project network, disconnect, connect with the service's
    aliases, start; then the names still resolve after berthd is killed and started again."""
    status, raw = b.api("POST", "/v1.44/networks/create", json.dumps({
        "Name": "proj_front", "CheckDuplicate": True, "Attachable": True,
        "Labels": {"com.docker.compose.project": "proj"}}).encode())
    assert status == 201, raw
    body = {"Image": "busybox", "Cmd": ["sh", "-c", HTTPD], "Hostname": "worker1",
            "HostConfig": {"NetworkMode": "proj_front"},
            "NetworkingConfig": {"EndpointsConfig": {"proj_front": {"Aliases": ["worker"], "IPAMConfig": {}}}}}
    status, raw = b.api("POST", "/v1.44/containers/create?name=proj_worker_1", json.dumps(body).encode())
    assert status == 201, raw
    cid = json.loads(raw)["Id"]
    assert b.api("POST", "/v1.44/networks/proj_front/disconnect", json.dumps({"Container": cid}).encode())[0] == 200
    connect = {"Container": cid, "EndpointConfig": {"Aliases": ["worker", cid[:12]]}}
    assert b.api("POST", "/v1.44/networks/proj_front/connect", json.dumps(connect).encode())[0] == 200
    assert b.api("POST", f"/v1.44/containers/{cid}/start")[0] == 204
    filtered = json.loads(b.api("GET", "/v1.44/networks?filters=" + urllib.request.quote(
        '{"label":["com.docker.compose.project=proj"]}'))[1])
    assert [n["Name"] for n in filtered] == ["proj_front"]
    for name in ("worker", "proj_worker_1", cid[:12]):
        proc = run(b, "--rm", "--network", "proj_front", "busybox", "wget", "-qO-", f"http://{name}/")
        assert proc.stdout == b"hello from worker1\n", (name, proc.stderr)
    b.kill()
    b.start()
    proc = b.docker("exec", "proj_worker_1", "nslookup", "worker", "127.0.0.11", check=False)
    assert proc.returncode == 0 and inspect(b, cid)["NetworkSettings"]["Networks"]["proj_front"]["IPAddress"] \
        in proc.stdout.decode()  # type: ignore[index]


def test_parallel_starts_never_share_an_address_and_prune_honours_until(b: PrivateBerthd) -> None:
    procs = [subprocess.Popen(["docker", "-H", b.host, "run", "-d", "busybox", "sleep", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(8)]
    ids = [p.communicate()[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    ips = [inspect(b, cid)["NetworkSettings"]["IPAddress"] for cid in ids]  # type: ignore[index]
    assert len(set(ips)) == 8 and all(ips)
    b.docker("network", "create", "fresh")
    assert b.docker("network", "prune", "-f", "--filter", "until=1h").stdout.strip() == b""
    assert b"fresh" in b.docker("network", "ls").stdout
    port = free_port()
    while not all(_free(p) for p in (port, port + 1)):
        port = free_port()
    ranged = run(b, "-d", "-p", f"{port}-{port + 1}:80-81", "-p", f"127.0.0.1:{port + 2}-{port + 9}:90", "busybox",
                 "sleep", "60").stdout.decode().strip()
    published = inspect(b, ranged)["NetworkSettings"]["Ports"]  # type: ignore[index]
    assert published["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)}]
    assert published["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port + 1)}]
    assert port + 2 <= int(published["90/tcp"][0]["HostPort"]) <= port + 9
    proc = b.docker("network", "prune", "-f", "--filter", "until=yesterday-ish", check=False)
    assert proc.returncode != 0 and b"invalid until filter" in proc.stderr


@pytest.fixture
def outside(b: PrivateBerthd) -> Iterator[tuple[str, str]]:
    """A stand-in for "the outside": a namespace of the test's own behind a veth, in the unused /24 of the daemon's
    private block, with a server that answers the address it sees the client coming from. Yields (server address,
    the host's address on that link)."""
    import ipaddress
    spare = ipaddress.IPv4Network(b.bip, strict=False).network_address + 256
    host_ip, far_ip = str(spare + 1), str(spare + 2)
    ns, veth = f"bo{b.bridge[2:]}"[:15], f"vo{b.bridge[2:]}"[:15]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        for argv in (["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
                     ["ip", "addr", "add", f"{host_ip}/30", "dev", veth], ["ip", "link", "set", veth, "up"],
                     ["ip", "-n", ns, "addr", "add", f"{far_ip}/30", "dev", "eth0"],
                     ["ip", "-n", ns, "link", "set", "eth0", "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(argv, check=True)
        code = ("import http.server as h\n"
                "class H(h.BaseHTTPRequestHandler):\n"
                "  def do_GET(s):\n"
                "    s.send_response(200); s.end_headers(); s.wfile.write(s.client_address[0].encode())\n"
                "  def log_message(s, *a): pass\n"
                f"h.HTTPServer(('{far_ip}', 8080), H).serve_forever()\n")
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", code])
        deadline = time.monotonic() + 10
        while subprocess.run(["ip", "netns", "exec", ns, "python3", "-c",
                              f"import socket; socket.create_connection(('{far_ip}', 8080), 1)"],
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "the outside server did not start"
            time.sleep(0.1)
        yield far_ip, host_ip
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_outbound_traffic_is_masqueraded_as_the_host(b: PrivateBerthd, outside: tuple[str, str]) -> None:
    far_ip, host_ip = outside
    proc = run(b, "--rm", "busybox", "wget", "-qO-", f"http://{far_ip}:8080/")
    assert proc.stdout.decode() == host_ip, proc.stderr    # the server saw the host, not the container
    b.docker("network", "create", "--internal", "walled")
    sealed = run(b, "--rm", "--network", "walled", "busybox", "sh", "-c",
                 f"timeout 2 wget -qO- http://{far_ip}:8080/; echo rc=$?")
    assert sealed.stdout.endswith(b"rc=1\n") or sealed.stdout.endswith(b"rc=143\n")   # no way out


def test_a_port_another_berthd_publishes_is_refused(b: PrivateBerthd) -> None:
    """No socket holds a DNAT'ed port: another daemon's rules are what says it is taken."""
    port = free_port()
    run(b, "-d", "-p", f"{port}:80", "busybox", "sleep", "60")
    with PrivateBerthd() as other:
        assert other.api("POST", "/berth/images/bootstrap?base=busybox")[0] == 200
        proc = other.docker("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
        assert proc.returncode != 0 and b"address already in use" in proc.stderr, proc.stderr
        assert other.docker("ps", "-aq").stdout == b""
