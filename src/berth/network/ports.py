"""Published ports: Docker's port specs parsed (`80`, `80/udp`, `8000-8001`), host ports chosen (given, from a
range, or random from the ephemeral range) and checked free: not taken by another container, not bound by a host
process.

May import: berth.network.model, berth.errors.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from berth.errors import InvalidArgument
from berth.network.model import PROTOCOLS, NetworkFailure, PortBinding, PortMapping

EPHEMERAL = (49153, 60999)


def parse_port(text: str, what: str) -> tuple[int, int]:
    """'80' -> (80, 80); '8000-8010' -> (8000, 8010), in Docker's words when wrong."""
    start, sep, end = text.partition("-")
    try:
        lo = int(start)
        hi = int(end) if sep else lo
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if not (0 < lo <= 65535 and 0 < hi <= 65535) or hi < lo:
        raise InvalidArgument(f"invalid {what}: {text}")
    return lo, hi


def parse_key(key: str) -> tuple[int, int, str]:
    """An ExposedPorts / PortBindings key: '80/tcp', '80', '8000-8001/udp'."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    lo, hi = parse_port(port, "containerPort")
    return lo, hi, proto


def parse_bindings(raw: Mapping[str, Any] | None) -> tuple[PortBinding, ...]:
    """HostConfig.PortBindings: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}; HostPort "" or "0" = random,
    "8000-8010" = the first free one of the range."""
    out: list[PortBinding] = []
    for key, items in (raw or {}).items():
        lo, hi, proto = parse_key(str(key))
        if hi != lo:
            raise InvalidArgument(f"invalid port specification: {key!r}: one container port per binding")
        for item in items or ():          # null or [] publishes nothing, as in Docker
            if not isinstance(item, Mapping):
                raise InvalidArgument(f"invalid port binding for {key}: expected {{'HostIp', 'HostPort'}}")
            host_ip = str(item.get("HostIp") or "")
            if host_ip:
                try:
                    socket.inet_aton(host_ip)
                except OSError:
                    raise InvalidArgument(f"invalid IP address: {host_ip}") from None
                if host_ip.count(".") != 3:
                    raise InvalidArgument(f"invalid IP address: {host_ip}")
            host_port = str(item.get("HostPort") or "")
            first, last = (0, 0) if host_port in ("", "0") else parse_port(host_port, "hostPort")
            out.append(PortBinding(lo, proto, host_ip, first, last if last != first else 0))
    return tuple(out)


def bindable(proto: str, host_ip: str, port: int) -> bool:
    """Whether a host process could take this port now (if it could not, one of them holds it)."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT leftovers do not count
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"cannot publish on {host_ip}: it is not an address of this host") from exc
            raise
    return True


def _conflicts(used: Collection[tuple[str, str, int]], proto: str, host_ip: str, port: int) -> bool:
    for p, ip, n in used:
        if p == proto and n == port and (ip in ("", "0.0.0.0") or host_ip in ("", "0.0.0.0") or ip == host_ip):
            return True
    return False


def allocate(wanted: Sequence[PortBinding], used: Collection[tuple[str, str, int]],
             is_free: Callable[[str, str, int], bool] = bindable,
             rng: random.Random | None = None) -> tuple[PortMapping, ...]:
    """Host ports for the bindings; used holds (proto, host_ip, port) of every other container's mappings."""
    rng = rng or random.Random()
    taken = set(used)
    out: list[PortMapping] = []
    for b in wanted:
        shown_ip = b.host_ip or "0.0.0.0"
        if b.host_port and not b.host_port_end:
            if _conflicts(taken, b.proto, b.host_ip, b.host_port):
                raise PortAllocated(f"Bind for {shown_ip}:{b.host_port} failed: port is already allocated")
            if not is_free(b.proto, b.host_ip, b.host_port):
                raise PortAllocated(f"Error starting userland proxy: listen {b.proto}4 {shown_ip}:{b.host_port}: "
                                    f"bind: address already in use")
            port = b.host_port
        else:
            lo, hi = (b.host_port, b.host_port_end) if b.host_port else EPHEMERAL
            candidates = list(range(lo, hi + 1))
            if not b.host_port:
                start = rng.randrange(len(candidates))
                candidates = candidates[start:] + candidates[:start]
            port = next((p for p in candidates if not _conflicts(taken, b.proto, b.host_ip, p)
                         and is_free(b.proto, b.host_ip, p)), 0)
            if not port:
                raise PortAllocated(f"Bind for {shown_ip}:{lo}-{hi} failed: port is already allocated" if b.host_port
                                    else "no free host port left in the ephemeral range")
        taken.add((b.proto, b.host_ip, port))
        out.append(PortMapping(b.container_port, b.proto, shown_ip, port))
    return tuple(out)


class PortAllocated(NetworkFailure):
    """A host port that another container, or a host process, already holds (Docker answers 500)."""
