"""nftables rules as a model: berth's whole ruleset for one daemon is one `table ip <name>` rendered from frozen
dataclasses into an `nft -f -` script and applied in one call (one transaction: the table is replaced as a whole,
so a failure leaves the previous rules). Removal is the same model's `delete table`. berth never touches another
table: dockerd, firewalld or the admin's rules live in theirs.

What the table does:
  * masquerade each non-internal network's traffic going out of its bridge (outbound NAT);
  * DNAT published ports for packets to any local address, both arriving (prerouting) and sent by the host itself
    (output), so 127.0.0.1:PORT works without a user-space proxy: the bridge has route_localnet=1 and the
    127.0.0.0/8 source is masqueraded as it leaves through the bridge;
  * masquerade DNAT'ed traffic that hairpins back into the same bridge (a container reaching a published port);
  * isolate bridges from each other, and internal networks from everything but themselves;
  * drop packets for 127.0.0.0/8 that arrive on any interface but lo (loopback-published ports stay local).

May import: berth.errors.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from berth.errors import RuntimeFailure

_NAME = re.compile(r"[A-Za-z0-9_]+")


def table_name(bridge: str) -> str:
    """The daemon's table, derived from its default bridge's name: two berthds never share one."""
    return "berth_" + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


@dataclass(frozen=True, slots=True)
class BridgeRules:
    bridge: str
    subnet: IPv4Network
    internal: bool = False


@dataclass(frozen=True, slots=True)
class Dnat:
    proto: str                       # tcp | udp | sctp
    host_ip: IPv4Address | None      # None: every local address
    host_port: int
    dest: IPv4Address
    dest_port: int


@dataclass(frozen=True, slots=True)
class Ruleset:
    table: str
    bridges: tuple[BridgeRules, ...] = ()
    dnats: tuple[Dnat, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.table):
            raise ValueError(f"bad nft table name {self.table!r}")


def _quote(ifname: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", ifname):
        raise ValueError(f"bad interface name {ifname!r}")
    return f'"{ifname}"'


def render(rules: Ruleset) -> str:
    """The script that replaces the table with exactly this model."""
    t = rules.table
    publish = []
    for d in sorted(rules.dnats, key=lambda d: (d.proto, d.host_port, str(d.host_ip))):
        match = f"ip daddr {d.host_ip} " if d.host_ip is not None else ""
        publish.append(f"    {match}{d.proto} dport {d.host_port} dnat to {d.dest}:{d.dest_port}")
    post, forward = [], []
    names = [b.bridge for b in rules.bridges]
    for b in rules.bridges:
        br = _quote(b.bridge)
        post.append(f"    oifname {br} ip saddr 127.0.0.0/8 masquerade")
        post.append(f"    oifname {br} ip saddr {b.subnet} ct status dnat masquerade")
        if b.internal:
            forward.append(f"    iifname {br} oifname != {br} drop")
            forward.append(f"    oifname {br} iifname != {br} drop")
        else:
            post.append(f"    ip saddr {b.subnet} oifname != {br} masquerade")
        others = [_quote(n) for n in names if n != b.bridge]
        if others:
            forward.append(f"    iifname {br} oifname {{ {', '.join(others)} }} drop")
    lines = [
        f"table ip {t}", f"delete table ip {t}", f"table ip {t} {{",
        # Loopback addresses only come from loopback: the bridges' route_localnet=1 (and the DNAT of ports
        # published on 127.0.0.1) would otherwise let a neighbour or a container with NET_RAW reach 127.0.0.1
        # ports through the host (CVE-2025-54388, CVE-2020-8558). Runs before NAT, so de-NAT'ed replies pass.
        "  chain localnet {", "    type filter hook prerouting priority raw; policy accept;",
        '    iifname != "lo" ip daddr 127.0.0.0/8 drop', "  }",
        "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump publish", "  }",
        "  chain output {", "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump publish", "  }",
        "  chain publish {", *publish, "  }",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;", *post, "  }",
        "  chain forward {", "    type filter hook forward priority filter; policy accept;", *forward, "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_removal(table: str) -> str:
    return f"table ip {table}\ndelete table ip {table}\n"


def apply(script: str) -> None:
    """Run one nft transaction."""
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeFailure(f"cannot run nft to program the network rules: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeFailure(f"nft rejected berth's network rules: {proc.stderr.strip()}")


def apply_ruleset(rules: Ruleset) -> None:
    apply(render(rules))


def remove_table(table: str) -> None:
    apply(render_removal(table))


_TABLE_LINE = re.compile(r"^table (\S+) (\S+) \{")
_DNAT_LINE = re.compile(r"\b(tcp|udp|sctp) dport (\d+)\b.*\bdnat\b")


def foreign_dnat_ports(ruleset_text: str, own_table: str) -> set[tuple[str, int]]:
    """(proto, port) that some other table DNATs (another berthd, dockerd with iptables-nft): host ports taken
    without any socket bound, which a test bind cannot see."""
    taken: set[tuple[str, int]] = set()
    table = ""
    for line in ruleset_text.splitlines():
        head = _TABLE_LINE.match(line)
        if head:
            table = head.group(2)
            continue
        match = _DNAT_LINE.search(line)
        if match and table != own_table:
            taken.add((match.group(1), int(match.group(2))))
    return taken


def list_ruleset() -> str:
    try:
        proc = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeFailure(f"cannot run nft to list the host's rules: {exc}") from exc
    return proc.stdout if proc.returncode == 0 else ""


def dnats_for(dest: IPv4Address, mappings: Sequence[tuple[str, str, int, int]]) -> list[Dnat]:
    """(proto, host_ip, host_port, container_port) tuples of one endpoint as DNAT rules."""
    out = []
    for proto, host_ip, host_port, container_port in mappings:
        ip = None if host_ip in ("", "0.0.0.0") else IPv4Address(host_ip)
        out.append(Dnat(proto, ip, host_port, dest, container_port))
    return out
