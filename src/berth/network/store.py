"""Network records on disk: `<root>/networks/<id>.json`, one per network with its members and their endpoints
(addresses and published ports in force), each rewritten atomically. Every change happens under one flock
(`<root>/networks/.lock`) and one in-process lock, so no address or port is handed out twice; the in-memory copy
is what lookups (the DNS server's) read.

May import: berth.network.model, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from berth.network.model import Network
from berth.util.atomic import read_json, write_json_atomic
from berth.util.locks import file_lock
from berth.util.reserve import with_reserve

log = logging.getLogger("berthd")


class NetworkStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        self._nets: dict[str, Network] = {}
        for entry in sorted(os.listdir(root)):
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            try:
                net = Network.from_json(read_json(root / entry))
            except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                log.warning("network record %s does not parse (%s); ignoring it", entry, exc)
                continue
            self._nets[net.id] = net

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold both locks for a read-modify-write of any record."""
        with self._lock, file_lock(self.root / ".lock"):
            yield

    def all(self) -> list[Network]:
        with self._lock:
            return list(self._nets.values())

    def get(self, network_id: str) -> Network | None:
        with self._lock:
            return self._nets.get(network_id)

    def save(self, net: Network, durable: bool = True) -> None:
        """durable=False for endpoint changes: they matter only while the containers run, and a crash that loses
        the page cache (a power loss) takes the containers with it. Still atomic: a berthd kill -9 loses nothing."""
        with self._lock:
            with_reserve(self.root, lambda: write_json_atomic(self.root / f"{net.id}.json", net.to_json(), mode=0o600,
                                                              durable=durable))
            self._nets[net.id] = net

    def delete(self, network_id: str) -> None:
        with self._lock:
            (self.root / f"{network_id}.json").unlink(missing_ok=True)
            self._nets.pop(network_id, None)
