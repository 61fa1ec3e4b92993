"""Fixtures for the registry tests: both servers, one per module, and a unique repository name per test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.servers import DOCKER_REGISTRY, RegistryServer, start_berth, start_docker_registry


@pytest.fixture(scope="module")
def berth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with start_berth(tmp_path_factory.mktemp("berth-registry")) as server:
        yield server


@pytest.fixture(scope="module", params=["berth", pytest.param("docker-registry", marks=pytest.mark.interop)])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The server under test: berth's, and Debian's docker-registry as the reference the tests are checked on."""
    if request.param == "berth":
        with start_berth(tmp_path_factory.mktemp("berth-registry")) as server:
            yield server
        return
    if not Path(DOCKER_REGISTRY).exists():
        pytest.skip("Debian's docker-registry is not installed (scripts/install.sh installs it)")
    with start_docker_registry(tmp_path_factory.mktemp("docker-registry")) as server:
        yield server


@pytest.fixture
def repo() -> str:
    return f"conformance/t{uuid.uuid4().hex[:12]}"


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
