"""Links, addresses and routes through netlink (pyroute2), and network namespaces entered by threads.

berthd keeps ONE netlink socket to its own namespace (`Netlink`), shared by every thread under a lock. Work inside
a container's namespace runs on a short-lived thread that enters it with setns (a thread's network namespace is
its own; the thread ends there, so nothing ever has to switch back), or creates it with unshare and pins it with a
bind mount: no fork of the threaded daemon, no `ip` command.

May import: berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from berth.errors import Conflict, RuntimeFailure
from berth.util import linux

log = logging.getLogger("berthd")

T = TypeVar("T")
_IFF_UP = 0x1


def _iproute(**kwargs: Any) -> Any:
    from pyroute2 import IPRoute  # 130 ms to import: only when berthd first needs netlink
    return IPRoute(**kwargs)


def _netlink_error(what: str, exc: BaseException) -> RuntimeFailure:
    return RuntimeFailure(f"{what}: {exc}")


def in_netns(path: Path, fn: Callable[[], T], create: bool = False) -> T:
    """Run fn on a fresh thread inside the network namespace pinned at path (create: a new namespace, with
    loopback up, pinned there first). The caller's thread never changes namespace."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.touch(mode=0o600)
                linux.unshare(linux.CLONE_NEWNET)
                linux.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), None, linux.MS_BIND)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    linux.setns(fd, linux.CLONE_NEWNET)
                finally:
                    os.close(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=body, name="netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        if create:
            remove_netns(path)
        exc = error[0]
        if isinstance(exc, OSError):
            raise RuntimeFailure(f"network namespace {path}: {exc}") from exc
        raise exc
    return result[0]


def remove_netns(path: Path) -> None:
    with contextlib.suppress(OSError):
        linux.umount(str(path), linux.MNT_DETACH)
    path.unlink(missing_ok=True)


def create_netns(path: Path) -> None:
    """A new namespace with only loopback, up (Docker's --network none)."""
    in_netns(path, _loopback_up, create=True)


def _loopback_up() -> None:
    """Two ioctls on a socket of the thread's namespace: a netlink socket of pyroute2's costs milliseconds more on
    every container start."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags = 0x8913, 0x8914
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | _IFF_UP))


@dataclass(frozen=True, slots=True)
class Interface:
    """One container interface to create: the host end of a veth on a bridge, the peer inside the namespace."""
    host_name: str
    bridge: str
    name: str                 # inside: eth0, eth1, ...
    address: IPv4Interface
    gateway: IPv4Address | None
    mac: str
    mtu: int = 1500


def veth_name() -> str:
    return "veth" + secrets.token_hex(4)[:7]


def read_sysctl(path: str) -> str:
    with open(f"/proc/sys/{path}") as f:
        return f.read().strip()


def write_sysctl(path: str, value: str) -> None:
    try:
        if read_sysctl(path) == value:
            return
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    except OSError as exc:
        raise RuntimeFailure(f"cannot set {path.replace('/', '.')}={value}: {exc}") from exc


class Netlink:
    """berthd's one netlink socket to the host's namespace. pyroute2's sync API keeps a transport per thread, so
    the socket lives on one worker thread and every call runs there, one at a time."""

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._ipr: Any = self._worker.submit(_iproute).result()

    def close(self) -> None:
        self._worker.submit(self._ipr.close).result()
        self._worker.shutdown()

    def _run(self, fn: Callable[[], T]) -> T:
        return self._worker.submit(fn).result()

    def _index(self, name: str) -> int | None:
        found = self._ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def exists(self, name: str) -> bool:
        return self._run(lambda: self._index(name) is not None)

    def ensure_bridge(self, name: str, gateway: IPv4Interface, mtu: int = 1500) -> None:
        """The bridge with the gateway address, up; left as it is when it exists already (live restore)."""
        def work() -> None:
            index = self._index(name)
            if index is None:
                self._ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                index = self._index(name)
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in self._ipr.get_addr(index=index)
                    if a["family"] == 2}
            if (str(gateway.ip), gateway.network.prefixlen) not in have:
                self._ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
            self._ipr.link("set", index=index, state="up")
        try:
            self._run(work)
        except Exception as exc:
            raise _netlink_error(f"cannot set up bridge {name} ({gateway})", exc) from exc
        # 127.0.0.1:PORT published ports: DNAT'ed packets leave through the bridge with a loopback source
        write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
        write_sysctl("net/ipv4/ip_forward", "1")

    def delete_link(self, name: str) -> None:
        """Delete a link (a veth takes its peer with it); absent is fine."""
        self._run(lambda: self.delete_link_now(name))

    def delete_link_later(self, name: str) -> None:
        """Queue the deletion (a veth takes ~20 ms of the kernel's time to go): the caller does not wait. The
        namespace's end would take the pair with it anyway; this makes it prompt."""
        def work() -> None:
            try:
                self.delete_link_now(name)
            except Exception as exc:  # noqa: BLE001 - nobody waits for this: log it
                log.warning("deleting link %s: %s", name, exc)
        self._worker.submit(work)

    def delete_link_now(self, name: str) -> None:
        """On the worker thread."""
        index = self._index(name)
        if index is not None:
            try:
                self._ipr.link("del", index=index)
            except Exception as exc:
                if getattr(exc, "code", None) != errno.ENODEV:
                    raise _netlink_error(f"cannot delete link {name}", exc) from exc

    def ports_of(self, bridge: str) -> list[str]:
        def work() -> list[str]:
            index = self._index(bridge)
            if index is None:
                return []
            return [str(link.get_attr("IFLA_IFNAME")) for link in self._ipr.get_links() if
                    link.get_attr("IFLA_MASTER") == index]
        return self._run(work)

    def routes(self) -> list[IPv4Network]:
        """The host's IPv4 routes' destinations (a new network must not overlap them)."""
        def work() -> list[IPv4Network]:
            out = []
            for r in self._ipr.get_routes(family=2, table=254):
                dst = r.get_attr("RTA_DST")
                if dst and r["dst_len"]:
                    out.append(IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
            return out
        return self._run(work)

    def add_interface(self, netns: Path, iface: Interface) -> None:
        """Create the veth pair with its peer already in the namespace, attach the host end to the bridge, then
        configure the peer (address, MAC, MTU, up, default route) from inside."""
        def inside() -> None:
            ns_fd = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._run(lambda: self._add_veth(iface, ns_fd))
            finally:
                os.close(ns_fd)
            try:
                _configure_peer(iface)
            except Exception:
                self.delete_link(iface.host_name)
                raise
        in_netns(netns, inside)

    def _add_veth(self, iface: Interface, ns_fd: int) -> None:
        master = self._index(iface.bridge)
        if master is None:
            raise RuntimeFailure(f"bridge {iface.bridge} is missing; restart berthd to recreate it")
        if self._index(iface.host_name) is not None:
            raise Conflict(f"link {iface.host_name} exists already")
        try:
            self._ipr.link("add", ifname=iface.host_name, kind="veth", mtu=iface.mtu,
                           peer={"ifname": iface.name, "net_ns_fd": ns_fd, "address": iface.mac, "mtu": iface.mtu})
            index = self._index(iface.host_name)
            self._ipr.link("set", index=index, master=master, state="up")
            # hairpin: a container reaching its own published port through the host comes back out this port
            self._ipr.brport("set", index=index, mode=1)
        except Exception as exc:
            with contextlib.suppress(Exception):
                index = self._index(iface.host_name)
                if index is not None:
                    self._ipr.link("del", index=index)
            raise _netlink_error(f"cannot create veth {iface.host_name} on {iface.bridge}", exc) from exc


def _configure_peer(iface: Interface) -> None:
    """On a thread inside the container's namespace."""
    with _iproute() as ipr:
        try:
            index = ipr.link_lookup(ifname=iface.name)[0]
            ipr.addr("add", index=index, address=str(iface.address.ip), prefixlen=iface.address.network.prefixlen)
            ipr.link("set", index=index, state="up")
            if iface.gateway is not None:
                with contextlib.suppress(Exception):   # a second network: its own default route would conflict
                    ipr.route("add", dst="0.0.0.0/0", gateway=str(iface.gateway), oif=index)
        except Exception as exc:
            raise _netlink_error(f"cannot configure {iface.name} ({iface.address}) in the container", exc) from exc


def remove_peer(netns: Path, name: str) -> None:
    """Delete an interface from inside a namespace (disconnect from a running container)."""
    def inside() -> None:
        with _iproute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
    in_netns(netns, inside)
