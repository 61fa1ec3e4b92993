"""Container state on disk (under the runtime's --root), and what a container's status is right now.

<root>/<id>/state.json  our record (written atomically, not fsynced: runtime state is volatile like runc's)
<root>/<id>/config.json the spec the container was created from (exec reuses its security settings)
<root>/<id>/exec.fifo   exists from create until start: the init blocks opening it for writing
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import fcntl
import os
from enum import StrEnum

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.oci.record import field, record
from berth.runtime import jsonio
from berth.util.atomic import write_atomic

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start
if TYPE_CHECKING:
    from typing import Any


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
OCI_VERSION = "1.0.2"


class Status(StrEnum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


def check_id(container_id: str) -> str:
    if not container_id or not _ID_CHARS.issuperset(container_id) or container_id in (".", "..") or len(container_id) > 1024:
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-', '.'")
    return container_id


@record
class ContainerState:
    id: str
    pid: int
    pid_start: int  # starttime of pid in /proc/<pid>/stat: tells a reused pid apart
    bundle: str
    rootfs: str
    created: str  # RFC 3339, UTC
    cgroup: dict[str, Any]  # the cgroup's record (cgroups.from_record)
    annotations: dict[str, str] = field(default_factory=dict)
    owner: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "pid": self.pid, "pid_start": self.pid_start, "bundle": self.bundle,
                "rootfs": self.rootfs, "created": self.created, "cgroup": self.cgroup,
                "annotations": dict(self.annotations), "owner": self.owner}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ContainerState:
        return cls(raw["id"], int(raw["pid"]), int(raw["pid_start"]), raw["bundle"], raw["rootfs"], raw["created"],
                   dict(raw["cgroup"]), dict(raw.get("annotations") or {}), raw.get("owner", ""))


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = text[text.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


class ContainerLock:
    """An exclusive flock on a container's state directory, for one operation (start, kill, delete...).

    The directory itself is locked (util.locks locks files it creates, and imports pathlib, which the start path
    avoids). A waiter whose container was deleted meanwhile holds a lock on a removed directory and then finds
    no state: NotFound, as it should.
    """
    __slots__ = ("_fd",)

    def __init__(self, directory: str, container_id: str) -> None:
        try:
            self._fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise NotFound(f"container {container_id} does not exist") from exc

    def __enter__(self) -> ContainerLock:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self._fd)


class StateStore:
    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, check_id(container_id))

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), "exec.fifo")

    def reserve(self, container_id: str) -> str:
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        d = self.dir(container_id)
        try:
            os.mkdir(d, 0o711)
        except FileExistsError as exc:
            raise Conflict(f"container with id {container_id} already exists") from exc
        return d

    def lock(self, container_id: str) -> ContainerLock:
        return ContainerLock(self.dir(container_id), container_id)

    def save(self, state: ContainerState) -> None:
        write_atomic(os.path.join(self.dir(state.id), "state.json"),
                     jsonio.dumps(state.to_json()).encode(), durable=False)

    def load(self, container_id: str) -> ContainerState:
        path = os.path.join(self.dir(container_id), "state.json")
        try:
            with open(path, "rb") as f:
                return ContainerState.from_json(jsonio.loads(f.read()))
        except FileNotFoundError as exc:
            raise NotFound(f"container {container_id} does not exist") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise NotFound(f"container {container_id}: state file {path} is unreadable ({exc})") from exc

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(os.path.join(self.root, n, "state.json")))

    def alive(self, state: ContainerState) -> bool:
        return process_start_time(state.pid) == state.pid_start
