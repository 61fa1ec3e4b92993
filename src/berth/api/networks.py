"""Network endpoints (/networks: list, inspect, create, remove, prune, connect, disconnect) and Docker's JSON for
networks, for a container's NetworkSettings and ps Ports, and the create request's network fields parsed into a
ContainerNetworking."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from berth.api.app import Router, engine_of, json_response
from berth.api.params import filters
from berth.api.streams import blocking
from berth.engine.containers import Container, Status
from berth.engine.engine import Engine
from berth.engine.networks import Attachment, CreateNetwork, container_view
from berth.errors import InvalidArgument
from berth.network import ports
from berth.network.model import (
    ContainerNetworking,
    EndpointRequest,
    Link,
    Network,
    parse_ipv4,
    parse_mac,
    parse_subnet,
)
from berth.oci.config import rfc3339_to_unix

_DRIVERS = {"bridge": "bridge", "host": "host", "null": "null"}


# -- create request of a container ----------------------------------------------------------------------------

def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid {what}: expected a list of strings")
    return tuple(value)


def parse_networking(body: Mapping[str, Any], host: Mapping[str, Any]) -> ContainerNetworking:
    """HostConfig's PortBindings, PublishAllPorts, Dns*, ExtraHosts and NetworkingConfig.EndpointsConfig."""
    endpoints: dict[str, EndpointRequest] = {}
    raw_endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(raw_endpoints, Mapping):
        raise InvalidArgument("invalid NetworkingConfig.EndpointsConfig: expected an object")
    for name, ep in raw_endpoints.items():
        ep = ep or {}
        ipam_config = ep.get("IPAMConfig") or {}
        ipv4 = str(ipam_config.get("IPv4Address") or "")
        mac = str(ep.get("MacAddress") or "")
        endpoints[str(name)] = EndpointRequest(_strings(ep.get("Aliases"), "Aliases"),
                                               parse_ipv4(ipv4) if ipv4 else None, parse_mac(mac) if mac else "",
                                               _links(ep.get("Links")))
    for item in _strings(host.get("ExtraHosts"), "ExtraHosts"):
        name, sep, ip = item.partition("=") if "=" in item else item.partition(":")
        if not sep or not name or not ip or (ip != "host-gateway" and not _is_ip(ip)):
            raise InvalidArgument(f"invalid IP address in add-host: \"{ip}\"" if sep else
                                  f"bad format for add-host: \"{item}\"")
    for server in _strings(host.get("Dns"), "Dns"):
        if not _is_ip(server):
            raise InvalidArgument(f"{server} is not an ip address")
    mac = str(body.get("MacAddress") or "")
    return ContainerNetworking(
        port_bindings=ports.parse_bindings(host.get("PortBindings")), publish_all=bool(host.get("PublishAllPorts")),
        dns=_strings(host.get("Dns"), "Dns"), dns_search=_strings(host.get("DnsSearch"), "DnsSearch"),
        dns_options=_strings(host.get("DnsOptions"), "DnsOptions"),
        extra_hosts=_strings(host.get("ExtraHosts"), "ExtraHosts"), mac_address=parse_mac(mac) if mac else "",
        endpoints=endpoints, links=_links(host.get("Links")))


def _links(value: Any) -> tuple[Link, ...]:
    """EndpointSettings.Links ("name:alias", as compose's `links:` and `docker run --link` on a user network send
    them)."""
    return tuple(Link.parse(item) for item in _strings(value, "Links"))


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- container JSON -------------------------------------------------------------------------------------------

def _endpoint_json(att: Attachment, c: Container) -> dict[str, Any]:
    m, net = att.member, att.network
    ep = m.endpoint
    user = net.user_defined
    aliases = list(dict.fromkeys([*m.aliases, *([c.id[:12]] if ep else [])])) if user else None
    return {
        "IPAMConfig": {"IPv4Address": str(m.ipv4)} if m.ipv4 else None,
        "Links": [str(k) for k in m.links] or None,
        "Aliases": aliases, "MacAddress": ep.mac if ep else "", "DriverOpts": None, "NetworkID": net.id,
        "EndpointID": ep.endpoint_id if ep else "",
        "Gateway": str(net.ipam.gateway) if ep and net.ipam and not net.internal else "",
        "IPAddress": str(ep.ip) if ep else "", "IPPrefixLen": net.ipam.subnet.prefixlen if ep and net.ipam else 0,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": list(dict.fromkeys([c.name, *m.aliases, c.id[:12]])) if user and ep else None,
    }


def _ports(c: Container, atts: Sequence[Attachment]) -> dict[str, Any]:
    if c.state.status not in (Status.RUNNING, Status.PAUSED):
        return {}
    out: dict[str, Any] = {key: None for key in c.config.exposed_ports}
    for att in atts:
        if att.member.endpoint is None:
            continue
        for p in att.member.endpoint.ports:
            out.setdefault(p.key, None)
            out[p.key] = [*(out[p.key] or []), {"HostIp": p.host_ip, "HostPort": str(p.host_port)}]
    return out


def network_settings(c: Container, atts: Sequence[Attachment], sandbox_key: str) -> dict[str, Any]:
    """Container inspect's NetworkSettings, in Docker's shape: Networks keyed by name; the top-level address
    fields are the default bridge's."""
    networks = {a.network.name: _endpoint_json(a, c) for a in atts}
    default = networks.get("bridge") or {}
    running = c.state.status in (Status.RUNNING, Status.PAUSED)
    return {"Bridge": "", "SandboxID": c.id if running and atts else "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": _ports(c, atts),
            "SandboxKey": sandbox_key if running and c.config.network_mode != "host" else "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": default.get("EndpointID", ""), "Gateway": default.get("Gateway", ""),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": default.get("IPAddress", ""),
            "IPPrefixLen": default.get("IPPrefixLen", 0), "IPv6Gateway": "",
            "MacAddress": default.get("MacAddress", ""), "Networks": networks}


def ps_ports(c: Container, atts: Sequence[Attachment]) -> list[dict[str, Any]]:
    """ps's Ports: one item per mapping, and the exposed ports that have none."""
    out: list[dict[str, Any]] = []
    mapped: set[str] = set()
    for key, bindings in _ports(c, atts).items():
        port, _, proto = key.partition("/")
        if bindings:
            mapped.add(key)
            for b in bindings:
                out.append({"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                            "Type": proto})
        else:
            out.append({"PrivatePort": int(port), "Type": proto})
    return out


def ps_networks(c: Container, atts: Sequence[Attachment]) -> dict[str, Any]:
    return {"Networks": {a.network.name: _endpoint_json(a, c) for a in atts}}


# -- network JSON ---------------------------------------------------------------------------------------------

def network_json(net: Network, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """names: container id -> name, to list the containers with endpoints (inspect); None for the list."""
    ipam_config = []
    if net.ipam is not None:
        item = {"Subnet": str(net.ipam.subnet), "Gateway": str(net.ipam.gateway)}
        if net.ipam.ip_range is not None:
            item["IPRange"] = str(net.ipam.ip_range)
        ipam_config.append(item)
    containers: dict[str, Any] = {}
    for cid, m in net.members.items():
        if m.endpoint is None or names is None:
            continue
        containers[cid] = {"Name": names.get(cid, m.name), "EndpointID": m.endpoint.endpoint_id,
                           "MacAddress": m.endpoint.mac,
                           "IPv4Address": f"{m.endpoint.ip}/{net.ipam.subnet.prefixlen}" if net.ipam else "",
                           "IPv6Address": ""}
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None if net.predefined else {},
                                          "Config": ipam_config},
            "Internal": net.internal, "Attachable": net.attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": dict(net.options), "Labels": dict(net.labels)}


def _label_match(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _matches(net: Network, given: Mapping[str, list[str]]) -> bool:
    if "name" in given and not any(n in net.name for n in given["name"]):
        return False
    if "id" in given and not any(net.id.startswith(i) for i in given["id"]):
        return False
    if "driver" in given and net.driver not in given["driver"]:
        return False
    if "type" in given:
        for t in given["type"]:
            if t not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{t}'")
        if ("custom" if net.user_defined else "builtin") not in given["type"]:
            return False
    if "label" in given and not all(_label_match(net.labels, w) for w in given["label"]):
        return False
    if "dangling" in given:
        dangling = not net.predefined and not any(m.endpoint for m in net.members.values())
        want = given["dangling"][0].lower() in ("1", "true")
        if dangling != want:
            return False
    return True


_FILTERS = {"name", "id", "label", "driver", "type", "dangling", "scope"}


def _filters(request: web.Request) -> dict[str, list[str]]:
    given = filters(request)
    for key in given:
        if key not in _FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    return given


# -- handlers -------------------------------------------------------------------------------------------------

async def list_networks(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = _filters(request)
    return json_response([network_json(n, {}) for n in engine.networks.all() if _matches(n, given)])


async def inspect_network(request: web.Request) -> web.Response:
    engine = engine_of(request)
    net = engine.networks.get(request.match_info["id"])
    names = {c.id: c.name for c in engine.containers.store.all() if c.id in net.members}
    return json_response(network_json(net, names))


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument("the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return value


def parse_create_network(body: Mapping[str, Any]) -> CreateNetwork:
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("network name must be a non-empty string")
    ipam_raw = body.get("IPAM") or {}
    configs = ipam_raw.get("Config") or []
    if len(configs) > 1:
        raise InvalidArgument("berth supports one IPv4 subnet per network")
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported by berth yet")
    subnet = gateway = ip_range = None
    if configs:
        cfg = configs[0] or {}
        subnet = parse_subnet(cfg["Subnet"]) if cfg.get("Subnet") else None
        gateway = parse_ipv4(cfg["Gateway"], "gateway") if cfg.get("Gateway") else None
        ip_range = parse_subnet(cfg["IPRange"]) if cfg.get("IPRange") else None
    driver = str(body.get("Driver") or "bridge")
    return CreateNetwork(name, driver, bool(body.get("Internal")), bool(body.get("Attachable")),
                         {str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                         {str(k): str(v) for k, v in (body.get("Options") or {}).items()},
                         subnet, gateway, ip_range, bool(body.get("CheckDuplicate", True)))


async def create_network(request: web.Request) -> web.Response:
    engine = engine_of(request)
    req = parse_create_network(await _body(request))
    net = await blocking(lambda: engine.networks.create(req))
    return json_response({"Id": net.id, "Warning": ""}, status=201)


async def remove_network(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await blocking(lambda: engine.networks.remove(request.match_info["id"]))
    return web.Response(status=204)


async def prune_networks(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = filters(request)
    for key in given:
        if key not in ("label", "label!", "until"):
            raise InvalidArgument(f"invalid filter '{key}'")

    until = _until(given["until"][0]) if given.get("until") else None

    def keep(net: Network) -> bool:
        if until is not None and rfc3339_to_unix(net.created) >= until:
            return True
        if "label" in given and not all(_label_match(net.labels, w) for w in given["label"]):
            return True
        return "label!" in given and any(_label_match(net.labels, w) for w in given["label!"])

    removed = await blocking(lambda: engine.networks.prune(keep))
    return json_response({"NetworksDeleted": removed})


def _until(text: str) -> float:
    """Docker's `until`: a unix timestamp, an RFC 3339 time, or a Go duration before now (10m, 24h, 1h30m)."""
    import re
    import time
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text)
    if parts and "".join(n + u for n, u in parts) == text:
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        return time.time() - sum(float(n) * scale[u] for n, u in parts)
    try:
        value = rfc3339_to_unix(text)
    except (ValueError, KeyError):
        value = 0
    if not value:
        raise InvalidArgument(f"invalid until filter {text!r}: a timestamp, a date or a duration")
    return float(value)


async def connect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    body = await _body(request)
    c = engine.containers.get(str(body.get("Container") or ""))
    ep = body.get("EndpointConfig") or {}
    ipv4 = str((ep.get("IPAMConfig") or {}).get("IPv4Address") or "")
    mac = str(ep.get("MacAddress") or "")
    req = EndpointRequest(_strings(ep.get("Aliases"), "Aliases"), parse_ipv4(ipv4) if ipv4 else None,
                          parse_mac(mac) if mac else "", _links(ep.get("Links")))
    running = c.state.status in (Status.RUNNING, Status.PAUSED)
    await blocking(lambda: engine.networks.connect(request.match_info["id"], container_view(c), req, running))
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    body = await _body(request)
    force = bool(body.get("Force"))
    ref = str(body.get("Container") or "")
    try:
        container_id = engine.containers.get(ref).id
    except Exception:
        if not force:
            raise
        container_id = ref
    await blocking(lambda: engine.networks.disconnect(request.match_info["id"], container_id, force))
    return web.Response(status=200)


def register(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("GET", "/networks/", list_networks)
    router.add("POST", "/networks/create", create_network)
    router.add("POST", "/networks/prune", prune_networks)
    router.add("GET", "/networks/{id}", inspect_network)
    router.add("DELETE", "/networks/{id}", remove_network)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)



def decorate_inspect(out: dict[str, Any], engine: Engine, c: Container) -> dict[str, Any]:
    """Container inspect's NetworkSettings from the network records."""
    out["NetworkSettings"] = network_settings(c, engine.networks.attachments(c.id),
                                              str(engine.containers.netns_of(c.id)))
    return out


def decorate_list_item(item: dict[str, Any], engine: Engine, c: Container) -> dict[str, Any]:
    atts = engine.networks.attachments(c.id)
    item["Ports"] = ps_ports(c, atts)
    item["NetworkSettings"] = ps_networks(c, atts)
    return item
