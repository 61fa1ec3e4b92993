"""Where a registry is and how to talk to it: endpoint URL, plain HTTP or TLS, and which CAs to trust.

TLS is verified by default. A registry's extra CAs and client certificates come from a directory like
Docker's `certs.d`: <certs_dir>/<host[:port]>/*.crt (CAs), *.cert + *.key (client pair). Plain HTTP is allowed
only for 127.0.0.0/8, ::1, `localhost` and the configured insecure registries (host[:port] or a CIDR); for
those berth tries TLS (unverified) first and falls back to HTTP, as dockerd does.
May import: berth.errors, berth.oci (stdlib otherwise).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import InvalidArgument
from berth.oci.reference import DEFAULT_DOMAIN

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DEFAULT_CERTS_DIRS = (Path("/etc/berth/certs.d"), Path("/etc/docker/certs.d"))


def split_host(host: str) -> tuple[str, int | None]:
    """'127.0.0.1:5000' -> ('127.0.0.1', 5000); '[::1]:5000' -> ('::1', 5000); 'example.com' -> (.., None)."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid registry host {host!r}")
        name, rest = host[1:end], host[end + 1:]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port_text = host.partition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidArgument(f"invalid port in registry host {host!r}")
        return name.lower(), int(port_text)
    return name.lower(), None


def is_loopback(host: str) -> bool:
    name, _ = split_host(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One registry as berth reaches it: `host` is the name in references (and the credentials' key)."""

    host: str                 # e.g. docker.io, 127.0.0.1:5000
    api_host: str             # where /v2/ is served, e.g. registry-1.docker.io
    insecure: bool            # plain HTTP allowed (after a failed TLS try), TLS unverified

    def base_url(self, scheme: str) -> str:
        return f"{scheme}://{self.api_host}"


@dataclass(frozen=True, slots=True)
class RegistryHosts:
    """Settings for every registry: insecure entries (host[:port] or CIDR) and certificate directories."""

    insecure: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=(), compare=False)

    @classmethod
    def create(cls, insecure: Sequence[str] = (), certs_dirs: Sequence[Path] = DEFAULT_CERTS_DIRS) -> RegistryHosts:
        nets = []
        hosts = []
        for entry in insecure:
            entry = entry.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
            if not entry:
                continue
            if "/" in entry:
                try:
                    nets.append(ipaddress.ip_network(entry, strict=False))
                except ValueError as exc:
                    raise InvalidArgument(f"invalid insecure registry {entry!r}: {exc}") from exc
            else:
                split_host(entry)
                hosts.append(entry.lower())
        return cls(tuple(hosts), tuple(certs_dirs), tuple(nets))

    def endpoint(self, host: str) -> Endpoint:
        api_host = DOCKER_HUB_ENDPOINT if host == DEFAULT_DOMAIN else host
        return Endpoint(host, api_host, self.is_insecure(host))

    def is_insecure(self, host: str) -> bool:
        if is_loopback(host):
            return True
        name, _ = split_host(host)
        if host.lower() in self.insecure or name in self.insecure:
            return True
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)

    def ssl_context(self, endpoint: Endpoint) -> ssl.SSLContext:
        """Verified TLS with the system CAs plus the registry's certs.d CAs; unverified for insecure hosts."""
        ctx = ssl.create_default_context()
        if endpoint.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for top in self.certs_dirs:
            d = top / endpoint.api_host
            if not d.is_dir():
                continue
            for crt in sorted(d.glob("*.crt")):
                try:
                    ctx.load_verify_locations(cafile=str(crt))
                except (OSError, ssl.SSLError) as exc:
                    raise InvalidArgument(f"cannot load CA certificate {crt}: {exc}") from exc
            for cert in sorted(d.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.exists():
                    raise InvalidArgument(f"client certificate {cert} has no key {key.name} beside it")
                try:
                    ctx.load_cert_chain(str(cert), str(key))
                except (OSError, ssl.SSLError) as exc:
                    raise InvalidArgument(f"cannot load client certificate {cert}: {exc}") from exc
        return ctx
