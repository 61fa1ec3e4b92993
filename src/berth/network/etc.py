"""A container's /etc/hosts and /etc/resolv.conf, rendered (pure) from its network mode and choices.

May import: berth.errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from berth.errors import InvalidArgument

DEFAULT_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                 "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
EMBEDDED_DNS = "127.0.0.11"
FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")    # Docker's, when the host has only loopback resolvers


def parse_extra_host(text: str, host_gateway: str) -> tuple[str, str]:
    """'name:ip' (or Docker 25's 'name=ip'); ip "host-gateway" = the default bridge's gateway."""
    name, sep, ip = text.partition("=") if "=" in text else text.partition(":")
    if not sep or not name or not ip:
        raise InvalidArgument(f"invalid argument {text!r} for \"--add-host\" flag: expected name:ip")
    if ip == "host-gateway":
        ip = host_gateway
    return name, ip


def hosts(entries: Sequence[tuple[str, Sequence[str]]], extra: Sequence[tuple[str, str]]) -> str:
    """Docker's layout: the defaults, --add-host lines, then the container's own addresses and names."""
    lines = [DEFAULT_HOSTS]
    lines += [f"{ip}\t{name}\n" for name, ip in extra]
    lines += [f"{ip}\t{' '.join(dict.fromkeys(names))}\n" for ip, names in entries if names]
    return "".join(lines)


def host_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf."""
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return servers, search, options


def _is_loopback(server: str) -> bool:
    return server.startswith("127.") or server == "::1"


def resolv_conf(host_text: str, dns: Sequence[str], search: Sequence[str], options: Sequence[str],
                embedded: bool) -> str:
    """embedded: a user-defined network, whose containers ask 127.0.0.11. Else the host's resolvers minus the
    loopback ones (unreachable from the container), or the --dns ones."""
    h_servers, h_search, h_options = host_resolv(host_text)
    if embedded:
        servers = [EMBEDDED_DNS]
        opts = list(options or h_options)
        if not any(o.startswith("ndots:") for o in opts):
            opts.append("ndots:0")
    else:
        servers = list(dns) or [s for s in h_servers if not _is_loopback(s)] or list(FALLBACK_DNS)
        opts = list(options or h_options)
    out = [f"nameserver {s}" for s in servers]
    if search or h_search:
        out.append("search " + " ".join(search or h_search))
    if opts:
        out.append("options " + " ".join(opts))
    return "\n".join(out) + "\n"
