"""The pure halves of networking: IPAM, port specs and host-port choice, the nft ruleset model, /etc files."""

from __future__ import annotations

import random
import subprocess
from ipaddress import IPv4Address, IPv4Network

import pytest

from berth.errors import Conflict, InvalidArgument
from berth.network import etc, ipam, nft, ports
from berth.network.model import ContainerNetworking, EndpointRequest, Ipam, Member, Network, PortBinding, mac_for


def test_mac_is_dockers_02_42_then_the_address() -> None:
    assert mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_allocation_skips_network_gateway_and_taken_addresses_and_honours_the_range() -> None:
    pool = ipam.default_ipam(IPv4Network("10.9.0.0/24"))
    assert ipam.allocate(pool, []) == IPv4Address("10.9.0.2")
    assert ipam.allocate(pool, [IPv4Address("10.9.0.2")]) == IPv4Address("10.9.0.3")
    ranged = Ipam(IPv4Network("10.9.0.0/24"), IPv4Address("10.9.0.1"), IPv4Network("10.9.0.128/25"))
    assert ipam.allocate(ranged, []) == IPv4Address("10.9.0.129")
    assert ipam.allocate(pool, [], IPv4Address("10.9.0.77")) == IPv4Address("10.9.0.77")


def test_allocation_refuses_a_taken_or_foreign_address_and_a_full_pool() -> None:
    pool = ipam.default_ipam(IPv4Network("10.9.0.0/30"))
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.allocate(pool, [IPv4Address("10.9.0.2")], IPv4Address("10.9.0.2"))
    with pytest.raises(InvalidArgument):
        ipam.allocate(pool, [], IPv4Address("10.8.0.2"))
    with pytest.raises(Conflict, match="no available IPv4"):
        ipam.allocate(pool, [IPv4Address("10.9.0.2")])


def test_overlapping_subnets_get_dockers_text() -> None:
    with pytest.raises(Conflict, match="^Pool overlaps with other one on this address space$"):
        ipam.check_no_overlap(IPv4Network("10.1.2.0/24"), [IPv4Network("10.1.0.0/16")])
    ipam.check_no_overlap(IPv4Network("10.2.0.0/24"), [IPv4Network("10.1.0.0/16")])


def test_pick_subnet_takes_the_first_free_block_of_the_pools() -> None:
    pools = (ipam.AddressPool.parse("base=10.50.0.0/22,size=24"),)
    assert ipam.pick_subnet(pools, [IPv4Network("10.50.0.0/24")]) == IPv4Network("10.50.1.0/24")
    with pytest.raises(Conflict):
        ipam.pick_subnet(pools, [IPv4Network("10.50.0.0/22")])
    for bad in ("base=10.50.0.0/22", "size=24", "base=nope,size=24", "base=10.50.0.0/22,size=8"):
        with pytest.raises(InvalidArgument):
            ipam.AddressPool.parse(bad)


def test_ipam_rejects_a_gateway_or_range_outside_the_subnet() -> None:
    with pytest.raises(InvalidArgument, match="Gateway"):
        Ipam(IPv4Network("10.9.0.0/24"), IPv4Address("10.8.0.1"))
    with pytest.raises(InvalidArgument, match="range"):
        Ipam(IPv4Network("10.9.0.0/24"), IPv4Address("10.9.0.1"), IPv4Network("10.9.1.0/25"))


def test_port_bindings_parse_random_fixed_and_ranged_host_ports() -> None:
    got = ports.parse_bindings({"80/tcp": [{"HostIp": "", "HostPort": ""}, {"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                "53/udp": [{"HostPort": "5300-5310"}]})
    assert got == (PortBinding(80, "tcp", "", 0), PortBinding(80, "tcp", "127.0.0.1", 8080),
                   PortBinding(53, "udp", "", 5300, 5310))
    assert ports.parse_bindings({"80/tcp": None, "81/tcp": []}) == ()


@pytest.mark.parametrize("raw, text", [
    ({"80/tcp": [{"HostPort": "70000"}]}, "invalid hostPort: 70000"),
    ({"b/tcp": [{"HostPort": "a"}]}, "invalid containerPort: b"),
    ({"80/tcp": [{"HostPort": "a"}]}, "invalid hostPort: a"),
    ({"80/icmp": [{}]}, "invalid proto: icmp"),
    ({"80/tcp": [{"HostIp": "1.2.3", "HostPort": "1"}]}, "invalid IP address"),
    ({"80/tcp": [{"HostPort": "9-3"}]}, "invalid hostPort: 9-3"),
])
def test_bad_port_specs_are_refused_in_dockers_words(raw: dict[str, object], text: str) -> None:
    with pytest.raises(InvalidArgument, match=text):
        ports.parse_bindings(raw)  # type: ignore[arg-type]


def test_host_port_allocation_refuses_taken_ports_and_picks_free_random_ones() -> None:
    used = [("tcp", "0.0.0.0", 8080)]
    with pytest.raises(ports.PortAllocated, match="Bind for 0.0.0.0:8080 failed: port is already allocated"):
        ports.allocate([PortBinding(80, "tcp", "", 8080)], used, lambda *_: True)
    with pytest.raises(ports.PortAllocated, match="address already in use"):
        ports.allocate([PortBinding(80, "tcp", "", 8081)], used, lambda *_: False)
    # the same number on another protocol is free; a specific address conflicts with 0.0.0.0
    assert ports.allocate([PortBinding(80, "udp", "", 8080)], used, lambda *_: True)[0].host_port == 8080
    with pytest.raises(ports.PortAllocated):
        ports.allocate([PortBinding(80, "tcp", "127.0.0.1", 8080)], used, lambda *_: True)
    two = ports.allocate([PortBinding(80), PortBinding(81)], [], lambda *_: True, random.Random(1))
    assert two[0].host_port != two[1].host_port
    assert all(ports.EPHEMERAL[0] <= m.host_port <= ports.EPHEMERAL[1] for m in two)
    ranged = ports.allocate([PortBinding(80, "tcp", "", 9000, 9002)], [("tcp", "", 9000)], lambda *_: True)
    assert ranged[0].host_port == 9001


def test_bindable_sees_a_port_a_host_process_listens_on() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not ports.bindable("tcp", "127.0.0.1", port)
    assert ports.bindable("tcp", "127.0.0.1", port)


def _rules() -> nft.Ruleset:
    return nft.Ruleset("berth_unit0", (nft.BridgeRules("bu0", IPv4Network("10.99.0.0/24")),
                                       nft.BridgeRules("bu1", IPv4Network("10.99.1.0/24"), internal=True)),
                       (nft.Dnat("tcp", None, 18080, IPv4Address("10.99.0.2"), 80),
                        nft.Dnat("udp", IPv4Address("127.0.0.1"), 5353, IPv4Address("10.99.0.2"), 53)))


def test_ruleset_renders_one_table_replaced_in_one_transaction() -> None:
    script = nft.render(_rules())
    assert script.startswith("table ip berth_unit0\ndelete table ip berth_unit0\ntable ip berth_unit0 {")
    assert "tcp dport 18080 dnat to 10.99.0.2:80" in script
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 10.99.0.2:53" in script
    assert 'ip saddr 10.99.0.0/24 oifname != "bu0" masquerade' in script
    assert "10.99.1.0/24 oifname" not in script                  # internal: no NAT out
    assert 'iifname "bu1" oifname != "bu1" drop' in script      # ...and no way out
    assert 'iifname "bu0" oifname { "bu1" } drop' in script     # bridges isolated
    assert 'oifname "bu0" ip saddr 127.0.0.0/8 masquerade' in script
    assert nft.render_removal("berth_unit0") == "table ip berth_unit0\ndelete table ip berth_unit0\n"


def test_table_names_derive_from_the_bridge_and_bad_names_are_refused() -> None:
    assert nft.table_name("bb1f-x.0") == "berth_bb1f_x_0"
    with pytest.raises(ValueError):
        nft.Ruleset("bad name")
    with pytest.raises(ValueError):
        nft.render(nft.Ruleset("t", (nft.BridgeRules('x"; flush ruleset', IPv4Network("10.0.0.0/24")),)))


@pytest.mark.root
def test_the_rendered_ruleset_applies_and_is_removed_by_the_same_model() -> None:
    rules = _rules()
    try:
        nft.apply_ruleset(rules)
        nft.apply_ruleset(rules)    # idempotent: replaced, not doubled
        listed = subprocess.run(["nft", "list", "table", "ip", rules.table], capture_output=True, text=True).stdout
        assert listed.count("dnat to 10.99.0.2:80") == 1
    finally:
        nft.remove_table(rules.table)
    assert subprocess.run(["nft", "list", "table", "ip", rules.table], capture_output=True).returncode != 0
    nft.remove_table(rules.table)   # removing an absent table is fine


def test_hosts_has_defaults_extra_hosts_then_the_containers_names() -> None:
    text = etc.hosts([("10.0.0.2", ["abc", "web", "alias", "web"])], [etc.parse_extra_host("gw:host-gateway", "10.0.0.1")])
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert text.endswith("10.0.0.1\tgw\n10.0.0.2\tabc web alias\n")
    with pytest.raises(InvalidArgument):
        etc.parse_extra_host("nocolon", "10.0.0.1")


def test_resolv_conf_per_mode() -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions edns0\n"
    assert etc.resolv_conf(host, (), (), (), embedded=False) == \
        "nameserver 10.1.1.1\nsearch corp.example\noptions edns0\n"
    assert etc.resolv_conf(host, ("9.9.9.9",), ("a.example",), ("ndots:2",), embedded=False) == \
        "nameserver 9.9.9.9\nsearch a.example\noptions ndots:2\n"
    assert etc.resolv_conf(host, (), (), (), embedded=True) == \
        "nameserver 127.0.0.11\nsearch corp.example\noptions edns0 ndots:0\n"
    assert "nameserver 8.8.8.8" in etc.resolv_conf("nameserver 127.0.0.53\n", (), (), (), embedded=False)


def test_records_round_trip_through_json() -> None:
    net = Network("n" * 64, "front", "bridge", "2026-01-01T00:00:00Z", "br-x",
                  Ipam(IPv4Network("10.3.0.0/24"), IPv4Address("10.3.0.1")), labels={"a": "b"},
                  members={"c": Member("c", "web", ("w",), IPv4Address("10.3.0.9"), "02:42:0a:03:00:09")})
    assert Network.from_json(net.to_json()) == net
    cn = ContainerNetworking((PortBinding(80, "tcp", "", 0),), True, ("1.1.1.1",), endpoints={
        "front": EndpointRequest(("w",), IPv4Address("10.3.0.9"))})
    assert ContainerNetworking.from_json(cn.to_json()) == cn


def test_ports_other_tables_dnat_count_as_taken() -> None:
    listing = ("table ip berth_me {\n\tchain publish {\n\t\ttcp dport 8080 dnat to 10.0.0.2:80\n\t}\n}\n"
               "table ip berth_other {\n\tchain publish {\n\t\tip daddr 127.0.0.1 tcp dport 9090 dnat to "
               "10.1.0.2:80\n\t\tudp dport 5353 dnat to 10.1.0.2:53\n\t}\n}\n"
               "table ip nat {\n\tchain DOCKER {\n\t\tiifname != \"docker0\" meta l4proto tcp tcp dport 7070 "
               "counter packets 0 bytes 0 dnat to 172.17.0.2:80\n\t}\n}\n")
    assert nft.foreign_dnat_ports(listing, "berth_me") == {("tcp", 9090), ("udp", 5353), ("tcp", 7070)}
