"""Container records: an immutable configuration, chosen at create, and a mutable state, each written atomically.

On disk: `<root>/containers/<id>/config.json` (ContainerConfig; never rewritten) and `state.json` (ContainerState,
name included, since rename changes it). One status enum; legal transitions are a table (STYLE.md §3).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from berth.engine.mounts import MountPoint
from berth.errors import Conflict, NotFound
from berth.network.model import ContainerNetworking
from berth.oci.digest import Digest
from berth.util.atomic import read_json, write_json_atomic
from berth.util.reserve import ensure_reserve, with_reserve


class Status(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


_NEXT: dict[Status, set[Status]] = {
    Status.CREATED: {Status.RUNNING, Status.EXITED, Status.REMOVING, Status.DEAD},
    Status.RUNNING: {Status.PAUSED, Status.EXITED, Status.RESTARTING, Status.DEAD},
    Status.PAUSED: {Status.RUNNING, Status.EXITED, Status.DEAD},
    Status.RESTARTING: {Status.RUNNING, Status.EXITED, Status.DEAD, Status.REMOVING},
    Status.EXITED: {Status.RUNNING, Status.RESTARTING, Status.REMOVING, Status.DEAD},
    Status.REMOVING: {Status.DEAD},
    Status.DEAD: {Status.REMOVING},
}


def check_transition(container: str, current: Status, new: Status) -> None:
    if new not in _NEXT[current]:
        raise Conflict(f"container {container} is {current}; it cannot become {new}")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: str = "no"            # no | always | unless-stopped | on-failure
    maximum_retry_count: int = 0


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """What `create` decided, image defaults already merged. Field meanings follow Docker's Config/HostConfig."""
    image: str                                   # as the user named it
    image_id: Digest
    args: tuple[str, ...]                        # entrypoint + cmd, resolved: args[0] is the program
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    healthcheck: Mapping[str, Any] | None = None
    # host configuration
    auto_remove: bool = False
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    network_mode: str = "default"
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    ulimits: tuple[Ulimit, ...] = ()
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    shm_size: int = 64 * 1024 * 1024
    init: bool = False
    sysctls: Mapping[str, str] = field(default_factory=dict)
    pid_mode: str = ""                # "", host, container:<ref> (berth.engine.nsmodes)
    ipc_mode: str = ""                # "", private, shareable, none, host, container:<ref>
    uts_mode: str = ""                # "", host
    log_max_size: int = 0
    log_max_file: int = 1
    runtime: str = "berth"
    console_size: tuple[int, int] = (0, 0)
    extra: Mapping[str, Any] = field(default_factory=dict)   # wire fields berth keeps only to show them back
    mounts: tuple[MountPoint, ...] = ()          # Binds, Mounts, Tmpfs (a draft); resolved at create (engine.mounts)
    volumes_from: tuple[str, ...] = ()           # `container[:ro|rw]`, as given
    networking: ContainerNetworking = field(default_factory=ContainerNetworking)   # ports, DNS, endpoints

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Digest):
                value = str(value)
            elif isinstance(value, RestartPolicy):
                value = {"name": value.name, "maximum_retry_count": value.maximum_retry_count}
            elif f.name == "ulimits":
                value = [{"name": u.name, "soft": u.soft, "hard": u.hard} for u in value]
            elif f.name == "mounts":
                value = [m.to_json() for m in value]
            elif f.name == "networking":
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ContainerConfig:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                continue
            if key == "image_id":
                value = Digest.parse(value)
            elif key == "restart_policy":
                value = RestartPolicy(value.get("name", "no"), int(value.get("maximum_retry_count", 0)))
            elif key == "ulimits":
                value = tuple(Ulimit(u["name"], int(u["soft"]), int(u["hard"])) for u in value)
            elif key == "mounts":
                value = tuple(MountPoint.from_json(m) for m in value)
            elif key == "networking":
                value = ContainerNetworking.from_json(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ContainerState:
    name: str
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    stopped_by_user: bool = False     # unless-stopped and always must know who stopped it
    health: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["status"] = str(self.status)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ContainerState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["status"] = Status(values.get("status", "created"))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    created: str
    config: ContainerConfig
    state: ContainerState
    dir: Path

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def short_id(self) -> str:
        return self.id[:12]


class ContainerStore:
    """The records under `<root>/containers`. A record without a parseable config is quarantined, not fatal."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o710)
        (root.parent / "quarantine").mkdir(exist_ok=True, mode=0o700)

    def dir_of(self, container_id: str) -> Path:
        return self.root / container_id

    def create(self, container_id: str, created: str, config: ContainerConfig, name: str) -> Container:
        path = self.dir_of(container_id)
        path.mkdir(mode=0o710)
        ensure_reserve(path)        # room for this record's state changes once the disk is full
        state = ContainerState(name)
        write_json_atomic(path / "state.json", state.to_json())
        # config.json last: a record becomes visible (load() requires it) only once complete
        write_json_atomic(path / "config.json", {"id": container_id, "created": created, "config": config.to_json()})
        return Container(container_id, created, config, state, path)

    def load(self, container_id: str) -> Container:
        path = self.dir_of(container_id)
        try:
            raw = read_json(path / "config.json")
            state = ContainerState.from_json(read_json(path / "state.json"))
        except FileNotFoundError:
            raise NotFound(f"No such container: {container_id}") from None
        return Container(raw["id"], raw["created"], ContainerConfig.from_json(raw["config"]), state, path)

    def save_state(self, container: Container, state: ContainerState, durable: bool = True) -> Container:
        """durable=False (still atomic) for what only describes a container's processes (running, exited, health):
        a power loss ends those processes anyway, and berthd's next start reconciles the record."""
        with_reserve(container.dir, lambda: write_json_atomic(container.dir / "state.json", state.to_json(),
                                                              durable=durable))
        return replace(container, state=state)

    def save_config(self, container: Container, config: ContainerConfig) -> Container:
        """Only `docker update` changes a configuration after create (limits, restart policy): atomically."""
        write_json_atomic(container.dir / "config.json",
                          {"id": container.id, "created": container.created, "config": config.to_json()})
        return replace(container, config=config)

    def remove(self, container_id: str) -> None:
        # Out of sight with one rename, then deleted: a monitor still writing its exit file cannot keep the
        # directory alive, and a crash in between leaves a '.removing-' entry that berthd's next start sweeps.
        doomed = self.root / f".removing-{container_id}"
        try:
            os.rename(self.dir_of(container_id), doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def names(self) -> dict[str, str]:
        """name -> id of every complete record, read from the state files only: a create checks its name without
        parsing every container's configuration."""
        out: dict[str, str] = {}
        root = str(self.root)
        for entry in os.listdir(root):
            if entry.startswith(".") or not os.path.exists(os.path.join(root, entry, "config.json")):
                continue   # being removed, or not complete yet
            try:
                out[str(read_json(os.path.join(root, entry, "state.json"))["name"])] = entry
            except (OSError, ValueError, KeyError, TypeError):
                continue   # all() quarantines what does not parse
        return out

    def all(self) -> Iterator[Container]:
        for entry in sorted(os.listdir(self.root)):
            try:
                yield self.load(entry)
            except NotFound:
                continue   # a record being created or removed right now
            except (ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
                self._quarantine(entry)

    def _quarantine(self, entry: str) -> None:
        target = self.root.parent / "quarantine" / entry
        try:
            os.rename(self.dir_of(entry), target)
        except OSError:
            return
        import logging
        logging.getLogger("berthd").warning("container record %s did not parse; moved it to %s", entry, target)
