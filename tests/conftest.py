"""Shared fixtures. Tests that need root or kernel features are marked `root`; peers (dockerd, skopeo,
runc) `interop`. On CI machines (root) none of them may skip."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, overlayfs)")
    for item in items:
        if "root" in item.keywords or "interop" in item.keywords:
            item.add_marker(skip)
