"""The engine's network service on its records alone (no kernel): membership at create and remove, the names the
embedded DNS answers, reconciliation after a restart, and the bad requests refused before anything is touched."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from berth.engine.networks import ContainerView, CreateNetwork, NetworkOptions, NetworkService
from berth.errors import Conflict, Forbidden, InvalidArgument, NotFound
from berth.network.ipam import AddressPool, default_ipam
from berth.network.model import ContainerNetworking, Endpoint, EndpointRequest, Network, PortBinding


@pytest.fixture
def svc(tmp_path: Path) -> NetworkService:
    options = NetworkOptions("bbunit0", IPv4Interface("10.207.240.1/24"),
                             (AddressPool(IPv4Network("10.207.241.0/24"), 26),))
    return NetworkService(tmp_path, options, lambda cid: tmp_path / "netns" / cid[:16])


def user_network(svc: NetworkService, name: str, subnet: str) -> Network:
    """A user network's record, as create() writes it (create itself needs the kernel)."""
    net = Network(name * 8, name, "bridge", f"2026-01-01T00:00:0{len(svc.all())}Z", f"br-{name}",
                  default_ipam(IPv4Network(subnet)))
    svc.store.save(net)
    return net


def view(tmp_path: Path, n: int, mode: str = "default", **kw: object) -> ContainerView:
    return ContainerView((f"{n:x}" * 64)[:64], f"c{n}", f"h{n}", mode, ContainerNetworking(**kw), (), tmp_path)  # type: ignore[arg-type]


def start(svc: NetworkService, net: Network, cid: str, ip: str) -> None:
    """Give a member an endpoint, as setup() does after creating the veth."""
    current = svc.get(net.id)
    member = current.members[cid]
    ep = Endpoint("e" * 64, IPv4Address(ip), "02:42:00:00:00:00", "vethx", "eth0")
    svc.store.save(replace(current, members={**current.members, cid: replace(member, endpoint=ep)}))


def test_predefined_networks_exist_once_and_cannot_be_created_or_removed(svc: NetworkService, tmp_path: Path) -> None:
    names = sorted(n.name for n in svc.all())
    assert names == ["bridge", "host", "none"]
    bridge = svc.get("bridge")
    assert bridge.bridge == "bbunit0" and str(bridge.ipam.subnet) == "10.207.240.0/24"  # type: ignore[union-attr]
    again = NetworkService(tmp_path, svc.options)          # a restart keeps the same ids
    assert sorted(n.id for n in again.all()) == sorted(n.id for n in svc.all())
    with pytest.raises(Forbidden):
        svc.remove("bridge")
    with pytest.raises(Forbidden):
        svc.create(CreateNetwork("host"))
    with pytest.raises(InvalidArgument):
        svc.create(CreateNetwork("../x"))
    with pytest.raises(NotFound):
        svc.get("nosuch")


def test_register_joins_the_network_of_the_mode_and_forget_leaves_it(svc: NetworkService, tmp_path: Path) -> None:
    front = user_network(svc, "front", "10.207.241.0/26")
    c = view(tmp_path, 1, "front", endpoints={"front": EndpointRequest(("web",))})
    svc.register(c)
    assert svc.get("front").members[c.id].aliases == ("web", "h1")   # dockerd 20.10 adds the hostname too
    d = view(tmp_path, 2)
    svc.register(d)
    assert d.id in svc.get("bridge").members
    h = view(tmp_path, 3, "host")
    svc.register(h)
    assert [a.network.name for a in svc.attachments(h.id)] == ["host"]
    for x in (c, d, h):
        svc.forget(x.id)
    assert all(not n.members for n in svc.all())
    assert front.id == svc.get("front").id


def test_bad_requests_are_refused_before_anything_is_recorded(svc: NetworkService, tmp_path: Path) -> None:
    user_network(svc, "front", "10.207.241.0/26")
    with pytest.raises(InvalidArgument, match="network nosuch not found"):   # 400: a 404 would make the CLI pull
        svc.register(view(tmp_path, 1, "nosuch"))
    with pytest.raises(InvalidArgument, match="user defined networks"):
        svc.register(view(tmp_path, 2, endpoints={"default": EndpointRequest(ipv4=IPv4Address("10.207.240.9"))}))
    with pytest.raises(InvalidArgument, match="alias"):
        svc.register(view(tmp_path, 3, endpoints={"bridge": EndpointRequest(("a",))}))
    with pytest.raises(InvalidArgument):
        svc.register(view(tmp_path, 4, "front", endpoints={"front": EndpointRequest(ipv4=IPv4Address("10.9.9.9"))}))
    with pytest.raises(InvalidArgument, match="port publishing"):
        svc.register(view(tmp_path, 5, "none", port_bindings=(PortBinding(80),)))
    assert all(not n.members for n in svc.all())


def test_dns_answers_names_aliases_and_short_ids_on_shared_user_networks_only(svc: NetworkService,
                                                                               tmp_path: Path) -> None:
    front = user_network(svc, "front", "10.207.241.0/26")
    back = user_network(svc, "back", "10.207.241.64/26")
    a = view(tmp_path, 1, "front", endpoints={"front": EndpointRequest(("web",))})
    b = view(tmp_path, 2, "front")
    c = view(tmp_path, 3, "back")
    for x in (a, b, c):
        svc.register(x)
    start(svc, front, a.id, "10.207.241.2")
    start(svc, front, b.id, "10.207.241.3")
    start(svc, back, c.id, "10.207.241.66")
    assert svc.lookup(b.id, "c1") == ["10.207.241.2"]
    assert svc.lookup(b.id, "WEB.") == ["10.207.241.2"]
    assert svc.lookup(b.id, a.id[:12]) == ["10.207.241.2"]
    assert svc.lookup(b.id, "web.front") == ["10.207.241.2"]
    assert svc.lookup(b.id, "c3") == []               # on another network: not visible
    assert svc.lookup(c.id, "web") == []
    assert svc.lookup(b.id, "example.org") == []      # not ours: forwarded
    svc.rename(a.id, "renamed")
    assert svc.lookup(b.id, "renamed") == ["10.207.241.2"] and svc.lookup(b.id, "c1") == []
    d = view(tmp_path, 4)                              # the default bridge has no embedded DNS
    svc.register(d)
    start(svc, svc.get("bridge"), d.id, "10.207.240.2")
    assert svc.lookup(d.id, "c1") == []


def test_reconcile_releases_ended_containers_and_drops_removed_ones(svc: NetworkService, tmp_path: Path) -> None:
    front = user_network(svc, "front", "10.207.241.0/26")
    live, ended, gone = view(tmp_path, 1, "front"), view(tmp_path, 2, "front"), view(tmp_path, 3, "front")
    for x, ip in ((live, "10.207.241.2"), (ended, "10.207.241.3"), (gone, "10.207.241.4")):
        svc.register(x)
        start(svc, front, x.id, ip)
    svc.reconcile(running=[], existing=[live.id, ended.id])    # nothing runs: the DNS attach is not tried
    members = svc.get("front").members
    assert set(members) == {live.id, ended.id}
    assert members[live.id].endpoint is None and members[ended.id].endpoint is None
    with pytest.raises(Conflict, match="network with name front already exists"):
        svc.create(CreateNetwork("front"))


@pytest.mark.parametrize("bridge, bip", [("x" * 16, "10.0.0.1/24"), ("bad name", "10.0.0.1/24"),
                                         ("ok0", "10.0.0.0/24"), ("ok0", "10.0.0.255/24"), ("ok0", "10.0.0.1/31")])
def test_daemon_options_are_checked(bridge: str, bip: str) -> None:
    with pytest.raises(InvalidArgument):
        NetworkOptions(bridge, IPv4Interface(bip))
