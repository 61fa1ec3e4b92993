"""Docker's JSON for a container's health (State.Health in inspect, the "(healthy)" in ps, the `health` filter),
rendered from the engine's health record (berth.engine.health)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth.engine.containers import Container
from berth.errors import InvalidArgument

HEALTH_FILTER_VALUES = ("starting", "healthy", "unhealthy", "none")


def health_json(health: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not health:
        return None
    return {"Status": str(health.get("status") or "starting"), "FailingStreak": int(health.get("failing_streak") or 0),
            "Log": [{"Start": e.get("start"), "End": e.get("end"), "ExitCode": e.get("exit_code"),
                     "Output": e.get("output", "")} for e in health.get("log") or ()]}


def health_status(c: Container) -> str:
    """starting | healthy | unhealthy, or none for a container without a healthcheck (the ps filter's values)."""
    return str((c.state.health or {}).get("status") or "none")


def status_suffix(c: Container) -> str:
    """What `docker ps` appends to "Up 3 seconds": " (healthy)", " (unhealthy)", " (health: starting)"."""
    status = health_status(c)
    if status == "none":
        return ""
    return " (health: starting)" if status == "starting" else f" ({status})"


def check_health_filter(values: list[str]) -> None:
    for v in values:
        if v not in HEALTH_FILTER_VALUES:
            raise InvalidArgument(f"Unrecognised filter value for health: {v}")
