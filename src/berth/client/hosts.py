"""Where the daemon listens: parse `unix:///path` and `tcp://host:port` once, and resolve which one to use.

Precedence, as docker's: the `-H/--host` flag, then $BERTH_HOST, then $DOCKER_HOST, then berth's default socket.
May import: the standard library, berth.errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from berth.errors import InvalidArgument

DEFAULT_SOCKET = "/run/berth/berth.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"
DEFAULT_TCP_PORT = 2375


class HostSource(StrEnum):
    FLAG = "-H"
    BERTH_HOST = "BERTH_HOST"
    DOCKER_HOST = "DOCKER_HOST"
    DEFAULT = "default"


class DaemonHost:
    """A daemon address. `address` is a socket path (unix) or `host:port` (tcp). Immutable.

    A slotted class rather than a frozen dataclass: importing dataclasses costs ~15 ms on every CLI call.
    """

    __slots__ = ("scheme", "address", "source")
    scheme: str  # "unix" or "tcp"
    address: str
    source: HostSource

    def __init__(self, scheme: str, address: str, source: HostSource = HostSource.DEFAULT) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DaemonHost is immutable; cannot set {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DaemonHost):
            return NotImplemented
        return (self.scheme, self.address, self.source) == (other.scheme, other.address, other.source)

    def __hash__(self) -> int:
        return hash((self.scheme, self.address, self.source))

    def __repr__(self) -> str:
        return f"DaemonHost({self.scheme!r}, {self.address!r}, {self.source!r})"

    @classmethod
    def parse(cls, text: str, source: HostSource = HostSource.DEFAULT) -> DaemonHost:
        raw = text.strip()
        scheme, sep, rest = raw.partition("://")
        if not sep:
            # docker accepts a bare path as a unix socket only when it is absolute
            if raw.startswith("/"):
                return cls("unix", raw, source)
            raise InvalidArgument(f"invalid daemon host {text!r}: expected unix:///path or tcp://host:port")
        scheme = scheme.lower()
        if scheme == "unix":
            if not rest.startswith("/"):
                raise InvalidArgument(f"invalid daemon host {text!r}: a unix socket path must be absolute")
            return cls("unix", rest, source)
        if scheme in ("tcp", "http"):
            hostport = rest.rstrip("/")
            if not hostport or "/" in hostport:
                raise InvalidArgument(f"invalid daemon host {text!r}: expected tcp://host:port")
            host, port = _split_host_port(hostport, text)
            return cls("tcp", f"{host}:{port}", source)
        raise InvalidArgument(f"invalid daemon host {text!r}: unsupported scheme {scheme!r} (use unix:// or tcp://)")

    @property
    def socket_path(self) -> str:
        if self.scheme != "unix":
            raise InvalidArgument(f"{self} is not a unix socket")
        return self.address

    @property
    def tcp_host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")

    @property
    def tcp_port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


def _split_host_port(hostport: str, original: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        host = f"[{host}]"
    else:
        host, sep, port_text = hostport.rpartition(":")
        if not sep:
            host, port_text = hostport, ""
    if not port_text:
        return host, DEFAULT_TCP_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(f"invalid daemon host {original!r}: bad port {port_text!r}")
    return host or "127.0.0.1", int(port_text)


def resolve_host(flag: str | None, environ: Mapping[str, str] | None = None) -> DaemonHost:
    """The daemon to talk to: `-H` > $BERTH_HOST > $DOCKER_HOST > the default berth socket."""
    env = os.environ if environ is None else environ
    if flag:
        return DaemonHost.parse(flag, HostSource.FLAG)
    if env.get("BERTH_HOST"):
        return DaemonHost.parse(env["BERTH_HOST"], HostSource.BERTH_HOST)
    if env.get("DOCKER_HOST"):
        return DaemonHost.parse(env["DOCKER_HOST"], HostSource.DOCKER_HOST)
    return DaemonHost.parse(DEFAULT_HOST, HostSource.DEFAULT)


def berth_owns(host: DaemonHost) -> bool:
    """May berth start a daemon on this address when nobody answers?

    Only on a unix socket that is berth's by how it was named: the default socket, $BERTH_HOST, or a `-H` socket
    whose file name starts with "berth". Never for $DOCKER_HOST (that names somebody else's daemon, usually
    dockerd) and never for TCP.
    """
    if host.scheme != "unix":
        return False
    if host.source in (HostSource.DEFAULT, HostSource.BERTH_HOST):
        return True
    if host.source is HostSource.FLAG:
        return os.path.basename(host.address).startswith("berth")
    return False
