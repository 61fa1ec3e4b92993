"""`berth network create|ls|inspect|rm|prune|connect|disconnect`, with docker's flags and output.

`network create` checks the IPAM flags as docker's client does (every --ip-range/--gateway inside one --subnet,
one range per subnet) before it calls the daemon.
May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import ipaddress
import json

from berth.cli.containers import confirm, daemon_message, parse_filters
from berth.cli.context import Ctx, UsageError
from berth.cli.formatter import inspect_output, render_list
from berth.cli.gotemplate import Method, Record
from berth.cli.units import truncate_id
from berth.client.transport import path_segment
from berth.errors import BerthError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADER = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                  "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def _kv(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if flag in ("--aux-address", "-o, --opt", "--ipam-opt") and not sep:
            raise UsageError(f'invalid argument "{item}" for "{flag}" flag: bad format for option: {item}', usage=True)
        out[key] = value
    return out


def ipam_config(subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]) -> list[dict[str, Any]]:
    """docker's consolidateIpam: one IPAM config per subnet with its range, gateway and auxiliary addresses."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise UsageError("every ip-range or gateway must have a corresponding subnet", exit_code=1)
    nets = []
    for s in subnets:
        try:
            nets.append(ipaddress.ip_network(s, strict=False))
        except ValueError as exc:
            raise UsageError(f"invalid CIDR address: {s}", exit_code=1) from exc
    configs: list[dict[str, Any]] = [{"Subnet": s} for s in subnets]
    for r in ranges:
        try:
            rng = ipaddress.ip_network(r, strict=False)
        except ValueError as exc:
            raise UsageError(f"invalid CIDR address: {r}", exit_code=1) from exc
        for cfg, net in zip(configs, nets, strict=True):
            if rng.version == net.version and rng.subnet_of(net):  # type: ignore[arg-type]
                if "IPRange" in cfg:
                    raise UsageError(f"cannot configure multiple ranges ({r}, {cfg['IPRange']}) on the same subnet "
                                     f"({cfg['Subnet']})", exit_code=1)
                cfg["IPRange"] = r
                break
        else:
            raise UsageError(f"no matching subnet for range {r}", exit_code=1)
    for g in gateways:
        try:
            gw = ipaddress.ip_address(g)
        except ValueError as exc:
            raise UsageError(f"invalid gateway address: {g}", exit_code=1) from exc
        for cfg, net in zip(configs, nets, strict=True):
            if gw in net:
                if "Gateway" in cfg:
                    raise UsageError(f"cannot configure multiple gateways ({g}, {cfg['Gateway']}) for the same "
                                     f"subnet ({cfg['Subnet']})", exit_code=1)
                cfg["Gateway"] = g
                break
        else:
            raise UsageError(f"no matching subnet for gateway {g}", exit_code=1)
    for name, addr in aux.items():
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError as exc:
            raise UsageError(f"invalid auxiliary address {name}: {addr}", exit_code=1) from exc
        for cfg, net in zip(configs, nets, strict=True):
            if ip in net:
                cfg.setdefault("AuxiliaryAddresses", {})[name] = addr
                break
        else:
            raise UsageError(f"no matching subnet for aux-address {addr}", exit_code=1)
    return configs


def run_network_create(ctx: Ctx, a: argparse.Namespace) -> int:
    configs = ipam_config(a.subnet, a.ip_range, a.gateway, _kv(a.aux_address, "--aux-address"))
    body: dict[str, Any] = {
        "Name": a.name[0], "Driver": a.driver, "Scope": a.scope, "Internal": a.internal,
        "Attachable": a.attachable, "Ingress": a.ingress, "ConfigOnly": a.config_only,
        "IPAM": {"Driver": a.ipam_driver, "Config": configs, "Options": _kv(a.ipam_opt, "--ipam-opt")},
        "Options": _kv(a.opt, "-o, --opt"), "Labels": _kv(a.label, "--label"),
    }
    if a.ipv6 is not None:
        body["EnableIPv6"] = a.ipv6
    if a.ipv4 is not None:
        body["EnableIPv4"] = a.ipv4
    if a.config_from:
        body["ConfigFrom"] = {"Network": a.config_from}
    created = ctx.client.post_json("/networks/create", json_body=body) or {}
    if created.get("Warning"):
        ctx.err.write(f"{created['Warning']}\n")
    ctx.out.write(f"{created.get('Id', '')}\n")
    return 0


def _natural(text: str) -> list[Any]:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def network_rows(items: list[dict[str, Any]], trunc: bool) -> list[Record]:
    rows = []
    for n in sorted(items, key=lambda n: _natural(str(n.get("Name") or ""))):
        rows.append(_network_record(n, trunc))
    return rows


def _network_record(n: dict[str, Any], trunc: bool) -> Record:
    nid = str(n.get("Id") or n.get("ID") or "")
    labels = n.get("Labels") or {}
    created = str(n.get("Created") or "")

    def created_at() -> str:
        from berth.cli.gotypes import GoTime

        return GoTime(created).go_string()

    return Record("*network.networkContext", {
        "ID": lambda: truncate_id(nid) if trunc else nid,
        "Name": lambda: str(n.get("Name") or ""),
        "Driver": lambda: str(n.get("Driver") or ""),
        "Scope": lambda: str(n.get("Scope") or ""),
        "IPv6": lambda: "true" if n.get("EnableIPv6") else "false",
        "Internal": lambda: "true" if n.get("Internal") else "false",
        "Labels": lambda: ",".join(f"{k}={v}" for k, v in labels.items()),
        "Label": lambda: Method(lambda name: str(labels.get(name, ""))),
        "CreatedAt": created_at,
    })


def run_network_ls(ctx: Ctx, a: argparse.Namespace) -> int:
    fmt = a.format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if a.quiet else NETWORK_TABLE
    items = ctx.client.get_json("/networks", {"filters": parse_filters(a.filter) or None}) or []
    ctx.out.write(render_list(fmt, network_rows(items, not a.no_trunc), NETWORK_HEADER))
    return 0


def inspect_objects(ctx: Ctx, names: list[str], path: str, fmt: str, type_name: str) -> int:
    """inspect for one kind of object: the raw JSON of each, or the template on it; errors after, exit 1."""
    from berth.cli.gotypes import JsonStruct

    raws: list[str] = []
    typed: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            raw = ctx.client.call("GET", path.format(path_segment(name))).decode()
        except NotFound as exc:
            errors.append(daemon_message(exc))
            continue
        raws.append(raw)
        typed.append(JsonStruct(json.loads(raw), type_name))
    text, template_errors = inspect_output(raws, fmt, typed)
    ctx.out.write(text)
    errors += template_errors
    if errors:
        ctx.err.write("\n".join(errors) + "\n")
        return 1
    return 0


def run_network_inspect(ctx: Ctx, a: argparse.Namespace) -> int:
    return inspect_objects(ctx, a.names, "/networks/{}", a.format, "network.Inspect")


def remove_each(ctx: Ctx, names: list[str], path: str, query: dict[str, Any] | None,
                ignore_missing: bool) -> int:
    """DELETE each; echo the names removed; the daemon's errors after, exit 1 if any."""
    errors = []
    failed = False
    for name in names:
        try:
            ctx.client.call("DELETE", path.format(path_segment(name)), query)
        except BerthError as exc:
            if ignore_missing and isinstance(exc, NotFound):
                continue
            errors.append(daemon_message(exc))
            failed = True
            continue
        ctx.out.write(name + "\n")
    if errors:
        ctx.err.write("\n".join(errors) + "\n")
    return 1 if failed else 0


def run_network_rm(ctx: Ctx, a: argparse.Namespace) -> int:
    code = remove_each(ctx, a.names, "/networks/{}", None, a.force)
    if code:
        ctx.err.write(f"exit status {code}\n")   # docker's network rm says so after the errors
    return code


def run_network_connect(ctx: Ctx, a: argparse.Namespace) -> int:
    network, container = a.args
    ipam: dict[str, Any] = {}
    if a.ip:
        ipam["IPv4Address"] = a.ip
    if a.ip6:
        ipam["IPv6Address"] = a.ip6
    if a.link_local_ip:
        ipam["LinkLocalIPs"] = a.link_local_ip
    endpoint: dict[str, Any] = {"IPAMConfig": ipam or None, "Links": a.link or None, "Aliases": a.alias or None,
                                "DriverOpts": _kv(a.driver_opt, "--driver-opt") or None}
    if a.gw_priority:
        endpoint["GwPriority"] = a.gw_priority
    ctx.client.call("POST", f"/networks/{path_segment(network)}/connect",
                    json_body={"Container": container, "EndpointConfig": endpoint})
    return 0


def run_network_disconnect(ctx: Ctx, a: argparse.Namespace) -> int:
    network, container = a.args
    ctx.client.call("POST", f"/networks/{path_segment(network)}/disconnect",
                    json_body={"Container": container, "Force": a.force})
    return 0


def run_network_prune(ctx: Ctx, a: argparse.Namespace) -> int:
    if not a.force and not confirm(ctx, "WARNING! This will remove all custom networks not used by at least one "
                                        "container."):
        ctx.err.write("network prune has been cancelled\n")
        return 0
    report = ctx.client.post_json("/networks/prune", {"filters": parse_filters(a.filter) or None}) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        ctx.out.write("Deleted Networks:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    return 0

