"""A container's fresh network namespace (`--network none`, and the base of every bridge endpoint) has its
loopback up: a server on 127.0.0.1 inside answers a client inside."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from berth.errors import RuntimeFailure
from berth.network.netlink import create_netns, in_netns, remove_netns

pytestmark = pytest.mark.root


def _loopback_talks() -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"up")
            return client.recv(16)


def _interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def test_a_new_namespace_has_only_loopback_and_it_is_up(tmp_path: Path) -> None:
    pinned = tmp_path / "ns"
    create_netns(pinned)
    try:
        assert in_netns(pinned, _interfaces) == ["lo"]
        assert in_netns(pinned, _loopback_talks) == b"up"
    finally:
        remove_netns(pinned)
    assert not pinned.exists()


def test_a_namespace_without_loopback_up_cannot_talk(tmp_path: Path) -> None:
    """The check above can fail: in a namespace made without the loopback step, nothing listens on 127.0.0.1."""
    pinned = tmp_path / "bare"
    in_netns(pinned, lambda: None, create=True)
    try:
        with pytest.raises(RuntimeFailure, match="unreachable|assign requested address"):
            in_netns(pinned, _loopback_talks)
    finally:
        remove_netns(pinned)
