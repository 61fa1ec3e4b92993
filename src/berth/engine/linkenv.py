"""The environment variables of legacy links (HostConfig.Links on the default bridge), as dockerd sets them: for a
link to container `web` as alias `db`, DB_NAME=/<container>/db, DB_PORT=tcp://<ip>:<port> for the lowest exposed
port, DB_PORT_<port>_<PROTO>{,_ADDR,_PORT,_PROTO} per exposed port (and for three or more consecutive ports
_START/_END range variables too), and DB_ENV_<name> for each variable of the linked container but HOME and PATH. The
container's own variables win over these.

May import: berth.engine.containers, berth.engine.networks, berth.network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from berth.engine.containers import Container
from berth.engine.networks import NetworkService
from berth.errors import NotFound
from berth.network.model import Link


def link_env(parent: str, link: Link, exposed: list[tuple[int, str]], child_env: list[str], ip: str) -> list[str]:
    """exposed: (port, proto) of the linked container, in any order."""
    alias = link.alias.upper().replace("-", "_")
    ports = sorted(exposed, key=lambda p: (p[0], p[1] != "tcp"))
    out = []
    if ports:
        out.append(f"{alias}_PORT={ports[0][1]}://{ip}:{ports[0][0]}")
    i = 0
    while i < len(ports):            # the ranges first...
        port, proto = ports[i]
        key = f"{alias}_PORT_{port}_{proto.upper()}"
        j = _next_contiguous(ports, i)
        if j > i + 1:
            end_port, end_proto = ports[j]
            out += [f"{key}_START={proto}://{ip}:{port}", f"{key}_ADDR={ip}", f"{key}_PROTO={proto}",
                    f"{key}_PORT_START={port}",
                    f"{alias}_PORT_{port}_{end_proto.upper()}_END={end_proto}://{ip}:{end_port}",
                    f"{alias}_PORT_{port}_{end_proto.upper()}_PORT_END={end_port}"]
            i = j + 1
        else:
            i += 1
    for port, proto in ports:        # ...then every port, those of the ranges too (as dockerd)
        key = f"{alias}_PORT_{port}_{proto.upper()}"
        out += [f"{key}={proto}://{ip}:{port}", f"{key}_ADDR={ip}", f"{key}_PORT={port}", f"{key}_PROTO={proto}"]
    out.append(f"{alias}_NAME=/{parent}/{link.alias}")
    for item in child_env:
        name, sep, value = item.partition("=")
        if sep and name not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{name}={value}")
    return out


def _next_contiguous(ports: list[tuple[int, str]], index: int) -> int:
    """The last index of the run of consecutive port numbers starting at index (protocols not compared, as in
    dockerd)."""
    value = ports[index][0]
    for k in range(index + 1, len(ports)):
        if ports[k][0] > value + 1:
            return k - 1
        value += 1
    return len(ports) - 1


def apply(spec: Mapping[str, Any], c: Container, get: Callable[[str], Container],
          network: NetworkService | None) -> dict[str, Any]:
    """The spec with the link variables of c's legacy links added to its process (none off the default bridge)."""
    out = dict(spec)
    links = c.config.networking.links
    if not links or network is None or c.config.network_mode not in ("", "default", "bridge"):
        return out
    process = dict(out.get("process") or {})
    env = list(process.get("env") or [])
    own = {item.partition("=")[0] for item in env}
    for link in links:
        try:
            child = get(link.name)
        except NotFound:
            continue
        ip = next((str(a.member.endpoint.ip) for a in network.attachments(child.id)
                   if a.network.name == "bridge" and a.member.endpoint is not None), "")
        if not ip:
            continue
        exposed = []
        for key in child.config.exposed_ports:
            number, _, proto = key.partition("/")
            if number.isdigit():
                exposed.append((int(number), proto or "tcp"))
        for item in link_env(c.name, link, exposed, list(child.config.env), ip):
            if item.partition("=")[0] not in own:
                env.append(item)
    process["env"] = env
    out["process"] = process
    return out
