"""The engine's network service: the predefined networks (bridge, host, none) and user-defined bridges, their
records (berth.network.store), and what a container's create, start, stop, connect, disconnect and remove do to
them: addresses allocated at start and released at stop as Docker does, a veth per endpoint, published ports as
DNAT rules, /etc/hosts and /etc/resolv.conf, and the embedded DNS server's attachments and lookups.

Kernel state (bridges, veths, nft rules) outlives berthd: after a restart `start()` re-ensures the bridges and
re-applies the same ruleset (conntrack keeps live connections), and `reconcile()` releases what containers that
ended meanwhile held.

May import: berth.network, berth.util, berth.errors (and berth.engine.containers for the records' types).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from berth.engine.containers import Container
from berth.errors import Conflict, Forbidden, InvalidArgument, NotFound
from berth.network import etc, ipam, nft, ports
from berth.network.model import (
    ContainerNetworking,
    Endpoint,
    EndpointRequest,
    Ipam,
    Member,
    Network,
    NetworkFailure,
    PortBinding,
    PortMapping,
    mac_for,
)
from berth.network.netlink import Interface, Netlink, create_netns, remove_peer, veth_name
from berth.network.store import NetworkStore

log = logging.getLogger("berthd")


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """dockerd's flags: --bridge, --bip, --default-address-pool, --mtu."""
    bridge: str = "berth0"
    bip: IPv4Interface = IPv4Interface("172.31.0.1/16")
    pools: tuple[ipam.AddressPool, ...] = (ipam.AddressPool(IPv4Network("10.220.0.0/16"), 24),)
    mtu: int = 1500

    def __post_init__(self) -> None:
        if not 1 <= len(self.bridge) <= 15 or not all(ch.isalnum() or ch in "-_." for ch in self.bridge):
            raise InvalidArgument(f"invalid --bridge {self.bridge!r}: 1 to 15 letters, digits, '-', '_' or '.'")
        net = self.bip.network
        if net.prefixlen > 30 or self.bip.ip in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"invalid --bip {self.bip}: the bridge's own address in a /30 or larger subnet, "
                                  f"e.g. 172.31.0.1/16")


@dataclass(frozen=True, slots=True)
class CreateNetwork:
    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    subnet: IPv4Network | None = None
    gateway: IPv4Address | None = None
    ip_range: IPv4Network | None = None
    check_duplicate: bool = True


@dataclass(frozen=True, slots=True)
class Attachment:
    """What inspect shows of one of a container's networks."""
    network: Network
    member: Member


@dataclass(frozen=True, slots=True)
class ContainerView:
    """The little the network service needs to know of a container."""
    id: str
    name: str
    hostname: str
    network_mode: str
    networking: ContainerNetworking
    exposed_ports: tuple[str, ...]
    dir: Path
    domainname: str = ""


_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")


def container_view(c: Container) -> ContainerView:
    return ContainerView(c.id, c.name, c.config.hostname, c.config.network_mode, c.config.networking,
                         c.config.exposed_ports, c.dir, c.config.domainname)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _mode_kind(mode: str) -> str:
    if mode in ("", "default", "bridge"):
        return "bridge"
    if mode in ("host", "none"):
        return mode
    if mode.startswith("container:"):
        return "container"
    return "user"


class NetworkService:
    def __init__(self, root: Path, options: NetworkOptions,
                 netns_of: Callable[[str], Path] | None = None,
                 running_netns: Callable[[str], tuple[str, Path]] | None = None,
                 notify: Callable[[str, Network, str], object] | None = None) -> None:
        """netns_of(container_id): where a container's namespace is pinned. running_netns(ref): (id, pinned
        namespace) of a running container, for --network container:<ref> (NotFound/Conflict otherwise).
        notify(action, network, container_id): Docker's network events (create, destroy, connect, disconnect)."""
        self.options = options
        self._notify = notify or (lambda action, net, container_id: None)
        self._in_host_or_none: set[str] = set()   # started containers of host/none, for their one disconnect
        self.store = NetworkStore(root / "networks")
        self._netns_of = netns_of or (lambda cid: Path("/run/berth/netns") / cid[:16])
        self._running_netns = running_netns
        self._netlink: Netlink | None = None
        self._nl_lock = threading.Lock()
        self._dns: Any = None
        self.table = nft.table_name(options.bridge)
        self._ensure_predefined()

    # -- kernel plumbing ----------------------------------------------------------------------------------

    def _nl(self) -> Netlink:
        with self._nl_lock:
            if self._netlink is None:
                self._netlink = Netlink()
            return self._netlink

    def start(self) -> list[str]:
        """At daemon start: the bridges of every network up, the ruleset applied."""
        notes = []
        for net in self.store.all():
            if net.driver == "bridge" and net.ipam is not None:
                gw = IPv4Interface(f"{net.ipam.gateway}/{net.ipam.subnet.prefixlen}")
                existed = self._nl().exists(net.bridge)
                self._nl().ensure_bridge(net.bridge, gw, self.options.mtu)
                if not existed:
                    notes.append(f"bridge {net.bridge} ({gw}) for network {net.name} created")
        self._apply_rules()
        notes += self._remove_orphan_veths()
        return notes

    def _remove_orphan_veths(self) -> list[str]:
        """Veths on berth's bridges that no endpoint record owns (a crash between creating one and recording
        it, or records lost): deleted."""
        notes = []
        for net in self.store.all():
            if net.driver != "bridge" or not net.bridge:
                continue
            owned = {m.endpoint.veth for m in net.members.values() if m.endpoint is not None}
            for port in self._nl().ports_of(net.bridge):
                if port not in owned:
                    self._nl().delete_link(port)
                    notes.append(f"removed orphan veth {port} from {net.bridge}")
        return notes

    def close(self) -> None:
        if self._dns is not None:
            with contextlib.suppress(Exception):
                self._dns.close()
        if self._netlink is not None:
            self._netlink.close()

    def ruleset(self) -> nft.Ruleset:
        bridges, dnats = [], []
        for net in sorted(self.store.all(), key=lambda n: n.created):
            if net.driver != "bridge" or net.ipam is None:
                continue
            bridges.append(nft.BridgeRules(net.bridge, net.ipam.subnet, net.internal))
            for m in net.members.values():
                if m.endpoint is not None:
                    for p in m.endpoint.ports:
                        host_ip = None if p.host_ip in ("", "0.0.0.0") else IPv4Address(p.host_ip)
                        dnats.append(nft.Dnat(p.proto, host_ip, p.host_port, m.endpoint.ip, p.container_port))
        return nft.Ruleset(self.table, tuple(bridges), tuple(dnats))

    def _apply_rules(self) -> None:
        nft.apply_ruleset(self.ruleset())

    def remove_rules(self) -> None:
        nft.remove_table(self.table)

    # -- network records ----------------------------------------------------------------------------------

    def _ensure_predefined(self) -> None:
        with self.store.locked():
            names = {n.name: n for n in self.store.all()}
            bip = self.options.bip
            default = names.get("bridge")
            wanted = Ipam(bip.network, bip.ip)
            if default is None:
                self.store.save(Network(secrets.token_hex(32), "bridge", "bridge", _now(), self.options.bridge,
                                        wanted, options=self._default_options()))
            elif default.ipam != wanted or default.bridge != self.options.bridge:
                if any(m.endpoint for m in default.members.values()):
                    raise Conflict(f"the default bridge is {default.bridge} ({default.ipam and default.ipam.subnet}) "
                                   f"with running containers; stop them before changing --bridge/--bip")
                self.store.save(replace(default, ipam=wanted, bridge=self.options.bridge,
                                        options=self._default_options()))
            for name, driver in (("host", "host"), ("none", "null")):
                if name not in names:
                    self.store.save(Network(secrets.token_hex(32), name, driver, _now()))

    def _default_options(self) -> dict[str, str]:
        """What `docker network inspect bridge` shows under Options."""
        return {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": self.options.bridge,
                "com.docker.network.driver.mtu": str(self.options.mtu)}

    def all(self) -> list[Network]:
        return sorted(self.store.all(), key=lambda n: n.created)

    def get(self, ref: str) -> Network:
        """By full id, name, or unique id prefix, as Docker resolves networks."""
        every = self.store.all()
        for n in every:
            if n.id == ref:
                return n
        for n in every:
            if n.name == ref:
                return n
        matches = [n for n in every if n.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def create(self, req: CreateNetwork) -> Network:
        if not _NAME.fullmatch(req.name):
            raise InvalidArgument(f"invalid network name {req.name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if req.name in ("bridge", "host", "none", "default"):
            raise Forbidden(f"{req.name} is a pre-defined network and cannot be created")
        if req.driver not in ("bridge", ""):
            raise NotFound(f"plugin \"{req.driver}\" not found: berth has only the bridge driver")
        if (req.gateway or req.ip_range) and req.subnet is None:
            raise InvalidArgument("cannot use --gateway or --ip-range without --subnet")
        with self.store.locked():
            if any(n.name == req.name for n in self.store.all()):
                raise Conflict(f"network with name {req.name} already exists")
            taken = [n.ipam.subnet for n in self.store.all() if n.ipam is not None]
            if req.subnet is not None:
                ipam.check_no_overlap(req.subnet, taken)
                ipam.check_no_overlap(req.subnet, self._nl().routes())
                pool = ipam.default_ipam(req.subnet, req.gateway, req.ip_range)
            else:
                pool = ipam.default_ipam(ipam.pick_subnet(self.options.pools, taken + self._nl().routes()))
            net_id = secrets.token_hex(32)
            bridge = str(req.options.get("com.docker.network.bridge.name") or f"br-{net_id[:12]}")
            net = Network(net_id, req.name, "bridge", _now(), bridge, pool, req.internal, req.attachable,
                          dict(req.labels), dict(req.options))
            gw = IPv4Interface(f"{pool.gateway}/{pool.subnet.prefixlen}")
            if not 1 <= len(bridge) <= 15 or not all(ch.isalnum() or ch in "-_." for ch in bridge):
                raise InvalidArgument(f"invalid bridge name {bridge!r}: 1 to 15 letters, digits, '-', '_' or '.'")
            if self._nl().exists(bridge):
                raise Conflict(f"bridge {bridge} exists already on this host; choose another name")
            # record and rules first, then the bridge: a bridge of berth's is never on the host unowned
            try:
                self.store.save(net)
                self._apply_rules()
                self._nl().ensure_bridge(bridge, gw, self.options.mtu)
            except BaseException:
                self.store.delete(net.id)
                with contextlib.suppress(Exception):
                    self._apply_rules()
                self._nl().delete_link(bridge)
                raise
        self._notify("create", net, "")
        return net

    def remove(self, ref: str) -> None:
        net = self.get(ref)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        with self.store.locked():
            net = self.get(net.id)
            if any(m.endpoint is not None for m in net.members.values()):
                raise Conflict(f"error while removing network: network {net.name} id {net.id} has active "
                               f"endpoints")
            self.store.delete(net.id)
            self._apply_rules()
            self._nl().delete_link(net.bridge)
        self._notify("destroy", net, "")

    def prune(self, keep: Callable[[Network], bool]) -> list[str]:
        """Remove every user-defined network without active endpoints that keep() does not hold."""
        removed = []
        for net in self.all():
            if net.predefined or keep(net) or any(m.endpoint for m in net.members.values()):
                continue
            with contextlib.suppress(Conflict, NotFound):
                self.remove(net.id)
                removed.append(net.name)
        return removed

    # -- containers: create, remove ------------------------------------------------------------------------

    def register(self, c: ContainerView) -> None:
        """At create: the container becomes a member of its networks (no address until it starts)."""
        kind = _mode_kind(c.network_mode)
        if kind == "container":
            if self._running_netns is None:
                raise InvalidArgument("--network container:<name> is not available")
            return
        if kind in ("host", "none"):
            if c.networking.port_bindings and kind == "none":
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            with self.store.locked():     # a member without endpoints: inspect shows the network, as Docker does
                net = self.get(kind)
                self.store.save(replace(net, members={**net.members, c.id: Member(c.id, c.name)}))
            return
        # a 404 from create makes the docker CLI pull the image: an unknown network is a bad argument here
        try:
            primary = self.get("bridge" if kind == "bridge" else c.network_mode)
            wanted: dict[str, EndpointRequest] = {}
            for key, req in c.networking.endpoints.items():
                net = primary if key in ("default", c.network_mode, primary.name, primary.id) else self.get(key)
                wanted[net.id] = req
        except NotFound as exc:
            raise InvalidArgument(str(exc)) from None
        wanted.setdefault(primary.id, EndpointRequest())
        with self.store.locked():
            for net_id, req in wanted.items():
                found = self.store.get(net_id)
                if found is None:
                    raise NotFound(f"network {net_id} not found")
                self._check_request(found, req)
                mac = req.mac or (c.networking.mac_address if net_id == primary.id else "")
                member = Member(c.id, c.name, _aliases(found, req, c), req.ipv4, mac, links=req.links)
                self.store.save(replace(found, members={**found.members, c.id: member}))

    @staticmethod
    def _check_request(net: Network, req: EndpointRequest) -> None:
        if req.aliases and not net.user_defined:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if req.ipv4 is not None:
            if not net.user_defined:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if net.ipam is not None and req.ipv4 not in net.ipam.subnet:
                raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {req.ipv4}")

    def forget(self, container_id: str) -> None:
        """At remove: no longer a member of anything. Not fsynced: a member whose container is gone is dropped by
        reconcile() at the next start anyway."""
        with self.store.locked():
            for net in self.store.all():
                if container_id in net.members:
                    members = dict(net.members)
                    members.pop(container_id)
                    self.store.save(replace(net, members=members), durable=False)

    def rename(self, container_id: str, name: str) -> None:
        with self.store.locked():
            for net in self.store.all():
                member = net.members.get(container_id)
                if member is not None and member.name != name:
                    self.store.save(replace(net, members={**net.members, container_id: replace(member, name=name)}))

    def attachments(self, container_id: str) -> list[Attachment]:
        """The container's networks, the one it was created with first."""
        out = [Attachment(n, n.members[container_id]) for n in self.store.all() if container_id in n.members]
        return sorted(out, key=lambda a: (a.member.endpoint.iface if a.member.endpoint else "~", a.network.created))

    # -- containers: start, stop ---------------------------------------------------------------------------

    def setup(self, c: ContainerView, undo: contextlib.ExitStack) -> Path | None:
        """At start: the namespace the container joins (None: the host's), with its interfaces configured, and
        its /etc/hosts and /etc/resolv.conf written. Each step registers its undo."""
        kind = _mode_kind(c.network_mode)
        host_text = _read("/etc/resolv.conf")
        if kind == "host":     # the host's files, with the container's --add-host and --dns* on top
            extra = [etc.parse_extra_host(h, str(self.options.bip.ip)) for h in c.networking.extra_hosts]
            net = c.networking
            self._write_etc(c, _read("/etc/hosts").rstrip("\n") + "\n" + "".join(f"{ip}\t{name}\n" for name, ip in extra),
                            etc.resolv_conf(host_text, net.dns, net.dns_search, net.dns_options, False)
                            if net.dns or net.dns_search or net.dns_options else host_text)
            self._joined(c.id, "host")
            return None
        if kind == "container":
            assert self._running_netns is not None
            other_id, path = self._running_netns(c.network_mode.partition(":")[2])
            other = c.dir.parent / other_id      # its network, so its names and resolvers (127.0.0.11 included)
            self._write_etc(c, _read(str(other / "hosts")) or etc.hosts([], []),
                            _read(str(other / "resolv.conf")) or etc.resolv_conf(
                                host_text, c.networking.dns, c.networking.dns_search, c.networking.dns_options, False))
            return path
        path = self._netns_of(c.id)
        from berth.network.netlink import remove_netns
        remove_netns(path)       # one left by a crash
        create_netns(path)
        undo.callback(remove_netns, path)
        entries: list[tuple[str, list[str]]] = []
        embedded = False
        if kind != "none":
            undo.callback(self.teardown, c.id)
            for index, att in enumerate(self._in_start_order(c)):
                ep = self._connect_endpoint(c, att.network.id, path, f"eth{index}", primary=index == 0)
                self._notify("connect", att.network, c.id)
                own = [f"{c.hostname}.{c.domainname}", c.hostname] if c.domainname else [c.hostname]  # as dockerd
                names = list(dict.fromkeys([*own, c.name, *att.member.aliases])) if att.network.user_defined else own
                entries.append((str(ep.ip), names))
                embedded = embedded or (index == 0 and att.network.user_defined)
            if embedded:
                self._dns_attach(c.id, path)
        else:
            self._joined(c.id, "none")
        extra = [etc.parse_extra_host(h, str(self.options.bip.ip)) for h in c.networking.extra_hosts]
        if kind == "bridge":
            extra += self._legacy_links(c)
        self._write_etc(c, etc.hosts(entries[:1] if entries else [], extra),
                        etc.resolv_conf(host_text, c.networking.dns, c.networking.dns_search,
                                        c.networking.dns_options, embedded))
        return path

    def _legacy_links(self, c: ContainerView) -> list[tuple[str, str]]:
        """HostConfig.Links on the default bridge (compose's version 1 files, `docker run --link`): a hosts line
        per link, "alias hostname name" as dockerd writes it. The linked container must be running there."""
        members = self.get("bridge").members
        out = []
        for link in c.networking.links:
            found = next(((cid, m) for cid, m in members.items() if link.name in (m.name, cid) or
                          (len(link.name) >= 12 and cid.startswith(link.name))), None)
            if found is None or found[1].endpoint is None:
                raise Conflict(f"Cannot link to a non running container: /{link.name} AS /{c.name}/{link.alias}")
            cid, target = found
            assert target.endpoint is not None
            hostname = _read(str(c.dir.parent / cid / "hostname")).strip()   # a sibling record, as for container:
            names = [link.alias, hostname, *([target.name] if link.alias != target.name else [])]
            out.append((" ".join(n for n in names if n), str(target.endpoint.ip)))
        return out

    def _in_start_order(self, c: ContainerView) -> list[Attachment]:
        """The network of --network first (it gets eth0, the default route and the published ports)."""
        mode = "bridge" if _mode_kind(c.network_mode) == "bridge" else c.network_mode
        atts = self.attachments(c.id)
        return sorted(atts, key=lambda a: (a.network.name != mode and a.network.id != mode, a.network.created))

    def _connect_endpoint(self, c: ContainerView, network_id: str, netns: Path, iface: str,
                          primary: bool) -> Endpoint:
        """Allocate the address (and, on the primary network, the host ports), create the interface, record it.
        On failure nothing stays allocated."""
        with self.store.locked():
            net = self.store.get(network_id)
            if net is None or c.id not in net.members:
                raise NotFound(f"network {network_id} not found")
            if net.ipam is None:
                raise InvalidArgument(f"network {net.name} has no addresses to give")
            member = net.members[c.id]
            stale = member.endpoint          # one a crash left recorded: replaced, its veth deleted below
            taken = [m.endpoint.ip for cid, m in net.members.items() if m.endpoint is not None and cid != c.id]
            ip = ipam.allocate(net.ipam, taken, member.ipv4)
            mappings: tuple[PortMapping, ...] = ()
            if primary:
                try:
                    wanted = self._wanted_ports(c)
                    mappings = ports.allocate(wanted, self._used_ports(but=c.id), self._port_free_check(wanted))
                except ports.PortAllocated as exc:
                    raise ports.PortAllocated(f"driver failed programming external connectivity on endpoint "
                                              f"{c.name} ({c.id}): {exc}") from None
            mac = member.mac or mac_for(ip)
            ep = Endpoint(secrets.token_hex(32), ip, mac, veth_name(), iface, mappings)
            # dockerd keeps the short id among the aliases from the first connect on (compose looks for it to
            # tell a container it has connected already from one it must connect again with its links)
            aliases = (*member.aliases, c.id[:12]) if net.user_defined and c.id[:12] not in member.aliases \
                else member.aliases
            self.store.save(replace(net, members={**net.members, c.id: replace(member, name=c.name, endpoint=ep,
                                                                               aliases=aliases)}),
                            durable=False)
        if stale is not None:
            self._nl().delete_link(stale.veth)
        try:
            self._nl().add_interface(netns, Interface(
                ep.veth, net.bridge, iface, IPv4Interface(f"{ip}/{net.ipam.subnet.prefixlen}"),
                None if net.internal else net.ipam.gateway, mac, self.options.mtu))
            if mappings:
                self._apply_rules()
        except BaseException:
            self._release(c.id, network_id)
            raise
        return ep

    def _wanted_ports(self, c: ContainerView) -> list[PortBinding]:
        wanted = list(c.networking.port_bindings)
        if c.networking.publish_all:
            bound = {b.key for b in wanted}
            for key in c.exposed_ports:
                lo, _hi, proto = ports.parse_key(key)
                if f"{lo}/{proto}" not in bound:
                    wanted.append(PortBinding(lo, proto))
        return wanted

    def _port_free_check(self, wanted: list[PortBinding]) -> Callable[[str, str, int], bool]:
        """Free = no host process has it bound and no other table (another berthd's, dockerd's) DNATs it."""
        foreign = nft.foreign_dnat_ports(nft.list_ruleset(), self.table) if wanted else set()
        return lambda proto, host_ip, port: (proto, port) not in foreign and ports.bindable(proto, host_ip, port)

    def _used_ports(self, but: str = "") -> list[tuple[str, str, int]]:
        return [(p.proto, p.host_ip, p.host_port) for n in self.store.all() for cid, m in n.members.items()
                if m.endpoint is not None and cid != but for p in m.endpoint.ports]

    def _release(self, container_id: str, network_id: str) -> Endpoint | None:
        """Forget the endpoint (address and ports back in the pools); returns what it was."""
        with self.store.locked():
            net = self.store.get(network_id)
            if net is None or container_id not in net.members:
                return None
            member = net.members[container_id]
            if member.endpoint is None:
                return None
            self.store.save(replace(net, members={**net.members, container_id: replace(member, endpoint=None)}),
                            durable=False)
            if member.endpoint.ports:
                with contextlib.suppress(NetworkFailure):
                    self._apply_rules()
        if self._netlink is not None:
            self._netlink.delete_link_later(member.endpoint.veth)
        return member.endpoint

    def teardown(self, container_id: str) -> None:
        """At stop (and when a start fails): every endpoint released, the DNS server detached. Idempotent."""
        self._dns_detach(container_id)
        for net in self.store.all():
            member = net.members.get(container_id)
            if member is not None and member.endpoint is not None:
                self._release(container_id, net.id)
                self._notify("disconnect", net, container_id)
            elif member is not None and net.name in ("host", "none") and container_id in self._in_host_or_none:
                self._in_host_or_none.discard(container_id)
                self._notify("disconnect", net, container_id)

    def _joined(self, container_id: str, name: str) -> None:
        """host and none have no endpoints, but dockerd reports a connect at start and a disconnect at stop."""
        self._in_host_or_none.add(container_id)
        with contextlib.suppress(NotFound):
            self._notify("connect", self.get(name), container_id)

    def reconcile(self, running: Iterable[str], existing: Iterable[str]) -> list[str]:
        """After a restart: endpoints of containers that no longer run are released, members of containers that
        no longer exist dropped, and the DNS server attached again for running ones on user networks."""
        running, existing = set(running), set(existing)
        notes = []
        for net in self.store.all():
            for cid, member in net.members.items():
                if cid not in existing:
                    self.forget(cid)
                    notes.append(f"network {net.name}: dropped removed container {cid[:12]}")
                elif member.endpoint is not None and cid not in running:
                    self.teardown(cid)
                    notes.append(f"network {net.name}: released {member.endpoint.ip} of stopped container {cid[:12]}")
        for cid in running:
            atts = self.attachments(cid)
            if atts and atts[0].member.endpoint is not None and atts[0].network.user_defined:
                with contextlib.suppress(Exception):
                    self._dns_attach(cid, self._netns_of(cid))
        return notes

    # -- live connect / disconnect -------------------------------------------------------------------------

    def connect(self, ref: str, c: ContainerView, req: EndpointRequest, running: bool) -> None:
        net = self.get(ref)
        kind = _mode_kind(c.network_mode)
        if kind in ("host", "container"):
            raise InvalidArgument("container sharing network namespace with another container or host cannot be "
                                  "connected to any other network")
        if kind == "none":
            raise InvalidArgument(f"container {c.id[:12]} is in network mode none: it cannot join {net.name}")
        if net.driver != "bridge":
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network")
        self._check_request(net, req)
        with self.store.locked():
            net = self.get(net.id)
            if c.id in net.members:
                raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
            self.store.save(replace(net, members={**net.members, c.id: Member(
                c.id, c.name, _aliases(net, req, c), req.ipv4, req.mac, links=req.links)}))
        if not running:
            return
        try:
            used = {a.member.endpoint.iface for a in self.attachments(c.id) if a.member.endpoint is not None}
            iface = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
            self._connect_endpoint(c, net.id, self._netns_of(c.id), iface, primary=False)
        except BaseException:
            self._drop_member(net.id, c.id)
            raise
        self._notify("connect", net, c.id)     # dockerd reports none for a container that is not running

    def disconnect(self, ref: str, container_id: str, force: bool = False) -> None:
        net = self.get(ref)
        if container_id not in net.members:
            if force:
                return
            raise Forbidden(f"container {container_id} is not connected to network {net.name}")
        ep = self._release(container_id, net.id)
        if ep is not None:
            with contextlib.suppress(Exception):
                remove_peer(self._netns_of(container_id), ep.iface)
            self._notify("disconnect", net, container_id)    # dockerd 20.10: one as the endpoint leaves...
        self._drop_member(net.id, container_id)
        self._notify("disconnect", net, container_id)        # ...and one for the request, running or not

    def _drop_member(self, network_id: str, container_id: str) -> None:
        with self.store.locked():
            net = self.store.get(network_id)
            if net is not None and container_id in net.members:
                members = dict(net.members)
                members.pop(container_id)
                self.store.save(replace(net, members=members))

    # -- DNS -----------------------------------------------------------------------------------------------

    def lookup(self, container_id: str, qname: str) -> list[str]:
        """The IPv4 addresses qname names for this container: names of containers, their aliases and short ids on
        the user-defined networks it shares with them; [] = not ours."""
        name = qname.rstrip(".").lower()
        out: list[str] = []
        for net in self.store.all():
            asker = net.members.get(container_id)
            if not net.user_defined or asker is None or asker.endpoint is None:
                continue
            linked = [k.name.lower() for k in asker.links if k.alias.lower() == name]
            for cid, m in net.members.items():
                if m.endpoint is not None and linked and (m.name.lower() in linked or cid[:12] in linked):
                    out.append(str(m.endpoint.ip))
                if m.endpoint is None:
                    continue
                names = {m.name.lower(), cid[:12], *(a.lower() for a in m.aliases)}
                if name in names or (name.endswith("." + net.name.lower()) and
                                     name[:-len(net.name) - 1] in names):
                    out.append(str(m.endpoint.ip))
        return list(dict.fromkeys(out))

    def may_forward_dns(self, container_id: str) -> bool:
        """Whether the embedded DNS may forward this container's other queries: only if one of its networks has a
        way out (dockerd's rule since CVE-2024-29018: a container on internal networks only resolves nothing
        outside)."""
        return any(container_id in net.members and not net.internal for net in self.store.all())

    def _dns_server(self) -> Any:
        if self._dns is None:
            from berth.network.dns import DnsServer, host_resolvers
            self._dns = DnsServer(self.lookup, lambda: host_resolvers(), may_forward=self.may_forward_dns)
        return self._dns

    def _dns_attach(self, container_id: str, netns: Path) -> None:
        try:
            server = self._dns_server()
        except ImportError:
            log.warning("no embedded DNS server in this berth; container names will not resolve")
            return
        server.attach(container_id, netns)

    def _dns_detach(self, container_id: str) -> None:
        if self._dns is not None:
            with contextlib.suppress(Exception):
                self._dns.detach(container_id)

    # -- files ---------------------------------------------------------------------------------------------

    @staticmethod
    def _write_etc(c: ContainerView, hosts: str, resolv: str) -> None:
        from berth.util.atomic import write_atomic
        write_atomic(c.dir / "hosts", hosts.encode(), durable=False)
        write_atomic(c.dir / "resolv.conf", resolv.encode(), durable=False)


def _aliases(net: Network, req: EndpointRequest, c: ContainerView) -> tuple[str, ...]:
    """The aliases asked for, and on a user-defined network the hostname too when it is not the short id: dockerd
    20.10 adds it, so other containers resolve a compose service's `hostname:`."""
    if net.user_defined and c.hostname and c.hostname not in (c.id[:12], c.name, *req.aliases):
        return (*req.aliases, c.hostname)
    return req.aliases


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
