"""Engine: the one place that builds the real parts (stores, services) from a root directory (STYLE.md §12).

Layout under root (DESIGN.md "On disk"): content/, images/, snapshots/, containers/, volumes/, networks/.
Volatile state lives under exec_root (default /run/berth).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from berth.content.store import BlobStore
from berth.engine.events import EventService
from berth.engine.execs import ExecService
from berth.engine.health import HealthService
from berth.engine.lifecycle import ContainerService
from berth.engine.networks import NetworkOptions, NetworkService
from berth.images.records import ImageRecords
from berth.images.service import ImageService
from berth.monitor.spawn import spawn, stop_zygote
from berth.snapshots.store import Snapshotter
from berth.util.atomic import write_atomic


@dataclass(frozen=True, slots=True)
class EngineConfig:
    root: Path = Path("/var/lib/berth")
    exec_root: Path = Path("/run/berth")
    network: NetworkOptions = field(default_factory=NetworkOptions)
    init: bool = False               # berthd --init: an init for containers whose HostConfig.Init is null


class Engine:
    def __init__(self, config: EngineConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        root = config.root
        root.mkdir(parents=True, exist_ok=True, mode=0o710)
        os.chmod(root, 0o710)  # layer dirs hold setuid files: no other user may traverse (CVE-2021-41091)
        config.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs = BlobStore(root / "content")
        self.snapshots = Snapshotter(root / "snapshots")
        self.records = ImageRecords(root / "images", clock)
        self.images = ImageService(self.blobs, self.snapshots, self.records,
                                   containers_using=lambda image_id: self.containers.using_image(image_id),
                                   clock=clock)
        # Monitors come from a fork server with the runtime already imported: a container is created in about
        # 14 ms instead of the 49 ms of a fresh interpreter (berth.monitor's docstring has the numbers).
        self._zygote = str(config.exec_root / "monitor-zygote.sock")
        self.events = EventService(root / "events")
        self.networks = NetworkService(root, config.network, lambda cid: config.exec_root / "netns" / cid[:16],
                                       lambda ref: self._running_netns(ref),
                                       lambda action, n, cid: self.events.network(action, n.id, n.name, n.driver, cid))
        self.containers = ContainerService(root, config.exec_root, self.images, self.snapshots,
                                           functools.partial(spawn, zygote=self._zygote), events=self.events,
                                           network=self.networks, default_init=config.init)
        self.volumes = self.containers.volumes
        self.execs = ExecService(config.exec_root, config.exec_root / "runtime")
        self.health = HealthService(self.containers, self.execs, self.events)
        self.id = self._engine_id(root)

    @staticmethod
    def _engine_id(root: Path) -> str:
        path = root / "engine-id"
        if not path.exists():
            write_atomic(path, str(uuid.uuid4()).encode())
        return path.read_text().strip()

    def _running_netns(self, ref: str) -> tuple[str, Path]:
        """--network container:<ref>: the running container's namespace to join."""
        from berth.engine.containers import Status
        from berth.errors import Conflict
        c = self.containers.get(ref)
        if c.state.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"cannot join network of a non running container: {c.id}")
        if c.config.network_mode == "host":
            return c.id, Path("/proc/1/ns/net")
        return c.id, self.containers.netns_of(c.id)

    def shutdown(self) -> None:
        """berthd is stopping; containers and their monitors run on (live restore)."""
        self.health.shutdown()
        self.containers.shutdown()
        stop_zygote(self._zygote)
        self.networks.close()

    def recover(self) -> list[str]:
        """After a crash or a restart: drop temp leftovers, then pick up the containers' monitors again.
        Returns what was done, for the log."""
        notes = [*self.snapshots.cleanup(), *self.networks.start(), *self.containers.reconcile()]
        every = list(self.containers.store.all())
        notes += self.networks.reconcile([c.id for c in every if c.state.pid and c.state.status.value in
                                          ("running", "paused", "restarting")], [c.id for c in every])
        return [*notes, *self.health.resume()]
