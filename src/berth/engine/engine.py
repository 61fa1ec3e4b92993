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
from dataclasses import dataclass
from pathlib import Path

from berth.content.store import BlobStore
from berth.engine.execs import ExecService
from berth.engine.lifecycle import ContainerService
from berth.images.records import ImageRecords
from berth.images.service import ImageService
from berth.monitor.spawn import spawn, stop_zygote
from berth.snapshots.store import Snapshotter
from berth.util.atomic import write_atomic


@dataclass(frozen=True, slots=True)
class EngineConfig:
    root: Path = Path("/var/lib/berth")
    exec_root: Path = Path("/run/berth")


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
        self.containers = ContainerService(root, config.exec_root, self.images, self.snapshots,
                                           functools.partial(spawn, zygote=self._zygote))
        self.execs = ExecService(config.exec_root, config.exec_root / "runtime")
        self.id = self._engine_id(root)

    @staticmethod
    def _engine_id(root: Path) -> str:
        path = root / "engine-id"
        if not path.exists():
            write_atomic(path, str(uuid.uuid4()).encode())
        return path.read_text().strip()

    def shutdown(self) -> None:
        """berthd is stopping; containers and their monitors run on (live restore)."""
        self.containers.shutdown()
        stop_zygote(self._zygote)

    def recover(self) -> list[str]:
        """After a crash or a restart: drop temp leftovers, then pick up the containers' monitors again.
        Returns what was done, for the log."""
        return [*self.snapshots.cleanup(), *self.containers.reconcile()]
