"""IP address management, pure: pick an endpoint's address from a pool, a user network's subnet from the default
address pools, and refuse overlapping subnets. The records that hold allocations live in berth.network.store.

May import: berth.network.model, berth.errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from berth.errors import Conflict, InvalidArgument
from berth.network.model import Ipam


@dataclass(frozen=True, slots=True)
class AddressPool:
    """`--default-address-pool base=CIDR,size=N`: user networks get /N subnets carved out of base."""
    base: IPv4Network
    size: int

    @classmethod
    def parse(cls, text: str) -> AddressPool:
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        try:
            base = IPv4Network(fields["base"], strict=True)
            size = int(fields["size"])
        except (KeyError, ValueError):
            raise InvalidArgument(f"invalid --default-address-pool {text!r}: expected base=CIDR,size=N") from None
        if not base.prefixlen <= size <= 30:
            raise InvalidArgument(f"invalid --default-address-pool {text!r}: size must be between the base's "
                                  f"prefix length ({base.prefixlen}) and 30")
        return cls(base, size)


class PoolOverlaps(Conflict):
    """Docker's text, which clients match on."""

    def __init__(self) -> None:
        super().__init__("Pool overlaps with other one on this address space")


def check_no_overlap(subnet: IPv4Network, taken: Iterable[IPv4Network]) -> None:
    for other in taken:
        if subnet.overlaps(other):
            raise PoolOverlaps()


def pick_subnet(pools: Sequence[AddressPool], taken: Sequence[IPv4Network]) -> IPv4Network:
    """The first /size subnet of the pools that overlaps nothing taken (other networks, the host's routes)."""
    for pool in pools:
        for candidate in pool.base.subnets(new_prefix=pool.size):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to assign "
                   "to the network")


def default_ipam(subnet: IPv4Network, gateway: IPv4Address | None = None,
                 ip_range: IPv4Network | None = None) -> Ipam:
    return Ipam(subnet, gateway if gateway is not None else subnet.network_address + 1, ip_range)


def allocate(ipam: Ipam, taken: Iterable[IPv4Address], wanted: IPv4Address | None = None) -> IPv4Address:
    """The wanted address if free, else the lowest free one of the pool's range (never the network, broadcast or
    gateway address)."""
    used = set(taken) | {ipam.gateway, ipam.subnet.network_address, ipam.subnet.broadcast_address}
    if wanted is not None:
        if wanted not in ipam.subnet:
            raise InvalidArgument(f"Address {wanted} does not belong to subnet {ipam.subnet}: choose an address "
                                  f"of the network's subnet")
        if wanted in used:
            raise Conflict(f"Address already in use: {wanted}")
        return wanted
    pool = ipam.ip_range or ipam.subnet
    for host in pool.hosts() if pool.prefixlen < 31 else pool:
        if host not in used:
            return host
    raise Conflict(f"no available IPv4 addresses on network subnet {ipam.subnet}")
