"""The network model: networks, their members and active endpoints, published ports, and a container's network
choices. Frozen dataclasses; JSON (snake_case, berth's own on-disk format) only in to_json/from_json.

May import: berth.errors (stdlib ipaddress for addresses.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from berth.errors import InvalidArgument, RuntimeFailure

PREDEFINED = ("bridge", "host", "none")


class NetworkFailure(RuntimeFailure):
    """Connecting a container failed on the host's side (ports, links, rules): Docker answers a start with 500."""
PROTOCOLS = ("tcp", "udp", "sctp")


def mac_for(ip: IPv4Address) -> str:
    """Docker's MAC for an IPv4 endpoint: 02:42 then the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def parse_mac(text: str) -> str:
    parts = text.strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(ch in "0123456789abcdef" for ch in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address: {text}")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"invalid MAC address: {text}: a multicast address cannot be an interface's")
    return ":".join(parts)


def parse_ipv4(text: str, what: str = "IP address") -> IPv4Address:
    try:
        return IPv4Address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None


def parse_subnet(text: str) -> IPv4Network:
    try:
        return IPv4Network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text}: expected an IPv4 CIDR such as 10.10.0.0/24") from None


@dataclass(frozen=True, slots=True)
class Ipam:
    """One IPv4 pool: addresses for endpoints come from ip_range (default: the whole subnet)."""
    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None

    def __post_init__(self) -> None:
        if self.gateway not in self.subnet:
            raise InvalidArgument(f"Invalid Gateway {self.gateway}: it is not in subnet {self.subnet}")
        if self.ip_range is not None and not self.ip_range.subnet_of(self.subnet):
            raise InvalidArgument(f"Invalid IP range {self.ip_range}: it is not within subnet {self.subnet}")
        if self.subnet.prefixlen > 30:
            raise InvalidArgument(f"subnet {self.subnet} is too small: use a /30 or larger")

    def to_json(self) -> dict[str, Any]:
        out = {"subnet": str(self.subnet), "gateway": str(self.gateway)}
        if self.ip_range is not None:
            out["ip_range"] = str(self.ip_range)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Ipam:
        return cls(IPv4Network(raw["subnet"]), IPv4Address(raw["gateway"]),
                   IPv4Network(raw["ip_range"]) if raw.get("ip_range") else None)


@dataclass(frozen=True, slots=True)
class PortBinding:
    """A publication the user asked for. host_port 0 = any free port; host_port_end > host_port = a range to pick
    from. host_ip "" = every address of the host."""
    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def to_json(self) -> dict[str, Any]:
        return {"container_port": self.container_port, "proto": self.proto, "host_ip": self.host_ip,
                "host_port": self.host_port, "host_port_end": self.host_port_end}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PortBinding:
        return cls(int(raw["container_port"]), str(raw["proto"]), str(raw["host_ip"]), int(raw["host_port"]),
                   int(raw.get("host_port_end", 0)))


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A publication in force: host_ip:host_port (host_ip "0.0.0.0" = all) forwarded to the endpoint's port."""
    container_port: int
    proto: str
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def to_json(self) -> dict[str, Any]:
        return {"container_port": self.container_port, "proto": self.proto, "host_ip": self.host_ip,
                "host_port": self.host_port}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PortMapping:
        return cls(int(raw["container_port"]), str(raw["proto"]), str(raw["host_ip"]), int(raw["host_port"]))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A running container's attachment: its address, the host end of its veth, and its published ports."""
    endpoint_id: str
    ip: IPv4Address
    mac: str
    veth: str
    iface: str
    ports: tuple[PortMapping, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"endpoint_id": self.endpoint_id, "ip": str(self.ip), "mac": self.mac, "veth": self.veth,
                "iface": self.iface, "ports": [p.to_json() for p in self.ports]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Endpoint:
        return cls(str(raw["endpoint_id"]), IPv4Address(raw["ip"]), str(raw["mac"]), str(raw["veth"]),
                   str(raw["iface"]), tuple(PortMapping.from_json(p) for p in raw.get("ports") or ()))


@dataclass(frozen=True, slots=True)
class Link:
    """A link on a user-defined network: the linking container's DNS answers alias with container name's address
    (how dockerd turns EndpointSettings.Links, which compose's `links:` sends, into names)."""
    name: str
    alias: str

    @classmethod
    def parse(cls, text: str) -> Link:
        """Docker's "name[:alias]"; "/web:/app/db" (HostConfig.Links' stored form) is name web, alias db."""
        name, _, alias = text.partition(":")
        name, alias = name.strip("/"), alias.rsplit("/", 1)[-1]
        if not name or "/" in name:
            raise InvalidArgument(f"invalid link format {text!r}: expected name:alias")
        return cls(name, alias or name)

    def __str__(self) -> str:
        return f"{self.name}:{self.alias}"


@dataclass(frozen=True, slots=True)
class Member:
    """A container connected to a network (running or not); endpoint is set while it runs."""
    container_id: str
    name: str
    aliases: tuple[str, ...] = ()
    ipv4: IPv4Address | None = None      # asked for with --ip / IPAMConfig.IPv4Address
    mac: str = ""                         # asked for with --mac-address
    endpoint: Endpoint | None = None
    links: tuple[Link, ...] = ()          # EndpointSettings.Links: names only this container resolves

    def to_json(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "name": self.name, "aliases": list(self.aliases),
                "ipv4": str(self.ipv4) if self.ipv4 else "", "mac": self.mac,
                "endpoint": self.endpoint.to_json() if self.endpoint else None,
                **({"links": [[k.name, k.alias] for k in self.links]} if self.links else {})}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Member:
        return cls(str(raw["container_id"]), str(raw.get("name", "")), tuple(raw.get("aliases") or ()),
                   IPv4Address(raw["ipv4"]) if raw.get("ipv4") else None, str(raw.get("mac", "")),
                   Endpoint.from_json(raw["endpoint"]) if raw.get("endpoint") else None,
                   tuple(Link(str(name), str(alias)) for name, alias in raw.get("links") or ()))


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    driver: str                      # bridge | host | null
    created: str
    bridge: str = ""                 # the Linux bridge, for driver bridge
    ipam: Ipam | None = None
    internal: bool = False
    attachable: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    members: Mapping[str, Member] = field(default_factory=dict)

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def user_defined(self) -> bool:
        """Docker's "custom" networks: the ones with an embedded DNS server."""
        return not self.predefined

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "driver": self.driver, "created": self.created,
                "bridge": self.bridge, "ipam": self.ipam.to_json() if self.ipam else None,
                "internal": self.internal, "attachable": self.attachable, "labels": dict(self.labels),
                "options": dict(self.options), "members": {k: m.to_json() for k, m in self.members.items()}}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Network:
        return cls(str(raw["id"]), str(raw["name"]), str(raw["driver"]), str(raw["created"]),
                   str(raw.get("bridge", "")), Ipam.from_json(raw["ipam"]) if raw.get("ipam") else None,
                   bool(raw.get("internal")), bool(raw.get("attachable")), dict(raw.get("labels") or {}),
                   dict(raw.get("options") or {}),
                   {k: Member.from_json(m) for k, m in (raw.get("members") or {}).items()})


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    """What a create or connect asks of one network: NetworkingConfig.EndpointsConfig[name]."""
    aliases: tuple[str, ...] = ()
    ipv4: IPv4Address | None = None
    mac: str = ""
    links: tuple[Link, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"aliases": list(self.aliases), "ipv4": str(self.ipv4) if self.ipv4 else "", "mac": self.mac,
                **({"links": [[k.name, k.alias] for k in self.links]} if self.links else {})}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EndpointRequest:
        return cls(tuple(raw.get("aliases") or ()), IPv4Address(raw["ipv4"]) if raw.get("ipv4") else None,
                   str(raw.get("mac", "")), tuple(Link(str(n), str(a)) for n, a in raw.get("links") or ()))


@dataclass(frozen=True, slots=True)
class ContainerNetworking:
    """A container's network choices from its create request (HostConfig and NetworkingConfig)."""
    port_bindings: tuple[PortBinding, ...] = ()
    publish_all: bool = False
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()         # "name:ip" as Docker keeps them; ip may be "host-gateway"
    mac_address: str = ""
    endpoints: Mapping[str, EndpointRequest] = field(default_factory=dict)   # by network name or id
    links: tuple[Link, ...] = ()              # HostConfig.Links: legacy links, on the default bridge only

    def to_json(self) -> dict[str, Any]:
        return {"port_bindings": [p.to_json() for p in self.port_bindings], "publish_all": self.publish_all,
                "dns": list(self.dns), "dns_search": list(self.dns_search), "dns_options": list(self.dns_options),
                "extra_hosts": list(self.extra_hosts), "mac_address": self.mac_address,
                "endpoints": {k: e.to_json() for k, e in self.endpoints.items()},
                **({"links": [[k.name, k.alias] for k in self.links]} if self.links else {})}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ContainerNetworking:
        return cls(tuple(PortBinding.from_json(p) for p in raw.get("port_bindings") or ()),
                   bool(raw.get("publish_all")), tuple(raw.get("dns") or ()), tuple(raw.get("dns_search") or ()),
                   tuple(raw.get("dns_options") or ()), tuple(raw.get("extra_hosts") or ()),
                   str(raw.get("mac_address", "")),
                   {k: EndpointRequest.from_json(e) for k, e in (raw.get("endpoints") or {}).items()},
                   tuple(Link(str(n), str(a)) for n, a in raw.get("links") or ()))
