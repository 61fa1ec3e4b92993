"""Network namespaces kept as bind mounts (`<exec_root>/netns/<id>`), so a container's network outlives its
processes' setup and is torn down with its exit. Created by a thread (unshare + bind mount, loopback up), not a
fork of the threaded daemon: berth.network.netlink does the work; this module keeps the engine's names for it."""

from __future__ import annotations

from pathlib import Path

from berth.network.netlink import create_netns, remove_netns


def create(path: Path) -> None:
    """A new network namespace with loopback up, pinned by a bind mount at path."""
    create_netns(path)


def remove(path: Path) -> None:
    remove_netns(path)
