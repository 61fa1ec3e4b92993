"""Named volumes with Docker's `local` driver.

On disk, under `<root>` (the engine's `<root>/volumes`):
    <name>/_data          the volume's content (what containers mount)
    <name>/volume.json    its record: name, driver, labels, options, created_at (written atomically)
    .tmp-<hex>/           a volume being created: renamed to <name> once complete, so a crash leaves none half-made
    .trash-<hex>/         a volume being removed: renamed away first, so it disappears at once
A volume with options (`type`, `device`, `o`) is mounted on its `_data` at first use, as Docker's local driver
does (`-o type=tmpfs -o device=tmpfs`, `-o type=none -o o=bind -o device=/host/dir`), and unmounted when no
running container uses it. Which containers use a volume is not stored here: the container records say it, and
the engine passes a `users` callback (so a crash can never leave a stale reference count).

May import: berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, RuntimeFailure
from berth.util import linux
from berth.util.atomic import fsync_dir, read_json, write_json_atomic

LOCAL = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_VALID_OPTIONS = ("type", "device", "o")
# Docker's local driver: an option that needs others beside it
_REQUIRES = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
# `o=` words that are mount flags (everything else is passed to the filesystem as data)
_FLAGS: dict[str, tuple[bool, int]] = {
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY), "nosuid": (False, linux.MS_NOSUID),
    "suid": (True, linux.MS_NOSUID), "nodev": (False, linux.MS_NODEV), "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC), "exec": (True, linux.MS_NOEXEC), "noatime": (False, linux.MS_NOATIME),
    "relatime": (False, linux.MS_RELATIME), "strictatime": (False, linux.MS_STRICTATIME),
    "nodiratime": (False, linux.MS_NODIRATIME), "sync": (False, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC), "defaults": (False, 0),
}

class Users(Protocol):
    """Who uses the volumes: what the container records say (berth.engine.volumeuse.VolumeUsers)."""

    def __call__(self) -> Mapping[str, Sequence[str]]:
        """volume name -> ids of the containers whose records mount it (running or not)."""
        ...

    def running(self, container_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    mountpoint: Path                    # <root>/<name>/_data
    created_at: str                     # RFC 3339, seconds, UTC
    driver: str = LOCAL
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver, "labels": dict(self.labels),
                "options": dict(self.options), "created_at": self.created_at}

    @classmethod
    def from_record(cls, raw: Mapping[str, Any], mountpoint: Path) -> Volume:
        return cls(str(raw["name"]), mountpoint, str(raw["created_at"]), str(raw.get("driver") or LOCAL),
                   {str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
                   {str(k): str(v) for k, v in (raw.get("options") or {}).items()})


def check_name(name: str) -> str:
    """Docker's grammar for local volume names; the messages are dockerd's."""
    if len(name) == 1:
        raise InvalidArgument(f"create {name}: volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                              "use absolute path")
    return name


def check_driver(name: str, driver: str) -> None:
    if driver not in ("", LOCAL):
        raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')


def check_options(name: str, options: Mapping[str, str]) -> None:
    for key in options:
        if key not in _VALID_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    for key, needed in _REQUIRES.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidArgument(f'create {name}: missing required option: "{other}"')


def mount_flags(o: str) -> tuple[int, str]:
    """`o=` of a local volume as (mount flags, filesystem data), as Docker's mount.ParseOptions splits it."""
    flags, data = 0, []
    for word in filter(None, o.split(",")):
        if word in _FLAGS:
            clear, flag = _FLAGS[word]
            flags = flags & ~flag if clear else flags | flag
        else:
            data.append(word)
    return flags, ",".join(data)


def _now() -> str:
    return datetime.fromtimestamp(int(time.time()), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class VolumeStore:
    """The volumes of one engine. `lock()` is held by callers that must see no volume appear or vanish meanwhile
    (a container create that references volumes; a removal that checks they are unused)."""

    def __init__(self, root: Path, users: Users, clock: Callable[[], str] = _now,
                 notify: Callable[[str, Volume], object] | None = None) -> None:
        """notify(action, volume): told of each "create" and "destroy" (for the event stream)."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o701)
        self._users, self._clock = users, clock
        self._notify = notify
        self._lock = threading.RLock()
        self._content: dict[str, threading.Lock] = {}   # per volume: one copy-up at a time
        self._records: dict[str, Volume] = {}            # records never change once written: read each once
        self._cleanup()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            yield

    @contextlib.contextmanager
    def filling(self, name: str) -> Iterator[None]:
        """Held while a container create checks whether the volume is empty and copies the image's content in:
        two at once must not both copy."""
        with self._lock:
            lock = self._content.setdefault(name, threading.Lock())
        with lock:
            yield

    def dir_of(self, name: str) -> Path:
        return self.root / name

    # -- create and look up -------------------------------------------------------------------------------

    def create(self, name: str = "", driver: str = LOCAL, labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None) -> tuple[Volume, bool]:
        """The volume `name` (a random 64-hex name when empty), created if missing. Returns (volume, created).
        An existing volume is returned as it is, as dockerd does."""
        name = name or secrets.token_hex(32)
        check_name(name)
        check_driver(name, driver)
        options = dict(options or {})
        check_options(name, options)
        with self._lock:
            with contextlib.suppress(NotFound):
                return self.get(name), False
            tmp = self.root / f".tmp-{secrets.token_hex(8)}"
            try:
                (tmp / "_data").mkdir(parents=True, mode=0o755)
                os.chmod(tmp, 0o701)
                volume = Volume(name, self.dir_of(name) / "_data", self._clock(), LOCAL, dict(labels or {}), options)
                write_json_atomic(tmp / "volume.json", volume.to_record())
                os.rename(tmp, self.dir_of(name))
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise RuntimeFailure(f"create {name}: {exc}") from exc
            fsync_dir(self.root)
            self._tell("create", volume)
            return volume, True

    def get(self, name: str) -> Volume:
        if not name or name.startswith(".") or "/" in name:
            raise NotFound(f"get {name}: no such volume")
        path = self.dir_of(name)
        known = self._records.get(name)
        if known is not None and path.is_dir():
            return known
        try:
            raw = read_json(path / "volume.json")
        except (FileNotFoundError, NotADirectoryError):
            self._records.pop(name, None)
            raise NotFound(f"get {name}: no such volume") from None
        volume = Volume.from_record(raw, path / "_data")
        self._records[name] = volume
        return volume

    def all(self) -> list[Volume]:
        out = []
        for entry in sorted(os.listdir(self.root)):
            if entry.startswith("."):
                continue
            try:
                out.append(self.get(entry))
            except (NotFound, ValueError, KeyError):
                continue
        return out

    def references(self) -> Mapping[str, Sequence[str]]:
        """volume name -> ids of the containers that mount it, for every volume some container mounts."""
        return self._users()

    def users(self, name: str) -> list[str]:
        """Ids of the containers whose records mount the volume."""
        return list(self._users().get(name, ()))

    # -- remove -------------------------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> None:
        """Docker refuses to remove a volume in use, even with force; force only forgives a missing one."""
        with self._lock:
            try:
                volume = self.get(name)
            except NotFound:
                if force:
                    return
                raise
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._destroy(volume)

    def _destroy(self, volume: Volume) -> None:
        self._unmount(volume)
        trash = self.root / f".trash-{secrets.token_hex(8)}"
        try:
            os.rename(self.dir_of(volume.name), trash)
        except OSError as exc:
            raise RuntimeFailure(f"remove {volume.name}: {exc}") from exc
        fsync_dir(self.root)
        self._records.pop(volume.name, None)
        self._content.pop(volume.name, None)
        self._tell("destroy", volume)
        self._delete_tree(trash)

    def _tell(self, action: str, volume: Volume) -> None:
        if self._notify is not None:
            self._notify(action, volume)

    def _delete_tree(self, path: Path) -> None:
        # never descend into a mount: an `o=bind` volume still mounted would have its host directory emptied
        if _mounts_under(path):
            raise RuntimeFailure(f"{path} still has mounts under it; not deleting it")
        shutil.rmtree(path, ignore_errors=True)

    def _cleanup(self) -> None:
        """Leftovers of a crash: half-made volumes and half-removed ones."""
        for entry in os.listdir(self.root):
            if entry.startswith((".tmp-", ".trash-")):
                with contextlib.suppress(BerthError):
                    self._delete_tree(self.root / entry)

    # -- use by containers --------------------------------------------------------------------------------

    def mount(self, volume: Volume) -> None:
        """Before a container starts: a volume with options gets its filesystem mounted on _data (once)."""
        if not volume.options:
            return
        with self._lock:
            target = str(volume.mountpoint)
            if _is_mount(target):
                return
            o = volume.options.get("o", "")
            flags, data = mount_flags(o)
            device, fstype = volume.options.get("device", ""), volume.options.get("type", "")
            try:
                linux.mount(device, target, None if flags & linux.MS_BIND else fstype, flags, data or None)
            except OSError as exc:
                raise RuntimeFailure(f"error while mounting volume '{target}': failed to mount local volume: mount "
                                     f"{device}:{target}, flags: {flags:#x}: {os.strerror(exc.errno or 0).lower()}"
                                     ) from exc

    def release(self, volume: Volume, container_id: str) -> None:
        """After a container stopped: unmount the volume's filesystem when no other running container uses it."""
        if not volume.options:
            return
        with self._lock:
            others = [cid for cid in self._users().get(volume.name, ()) if cid != container_id]
            if not any(self._users.running(cid) for cid in others):
                self._unmount(volume)

    def unmount_unused(self) -> list[str]:
        """After a restart: unmount volumes with options that no running container uses (a start that crashed
        between mounting them and running leaves such). Returns notes for the log."""
        notes = []
        with self._lock:
            users = self._users()
            for volume in self.all():
                if volume.options and _is_mount(str(volume.mountpoint)) and \
                        not any(self._users.running(cid) for cid in users.get(volume.name, ())):
                    with contextlib.suppress(BerthError):
                        self._unmount(volume)
                        notes.append(f"volume {volume.name} unmounted: no running container uses it")
        return notes

    def _unmount(self, volume: Volume) -> None:
        target = str(volume.mountpoint)
        # mountinfo, not os.path.ismount: a bind of a directory of the same filesystem has the same st_dev
        while _is_mount(target):
            try:
                linux.umount(target, linux.MNT_DETACH)
            except OSError as exc:
                raise RuntimeFailure(f"unmounting volume {volume.name}: {exc}") from exc

    # -- prune and disk usage -----------------------------------------------------------------------------

    def prune(self, keep: Callable[[Volume], bool]) -> tuple[list[str], int]:
        """Remove every unused volume that `keep` does not keep. Returns (names, bytes reclaimed)."""
        removed, reclaimed = [], 0
        with self._lock:
            users = self._users()
            for volume in self.all():
                # as dockerd: a volume with mount options is never pruned (its data lives elsewhere: nothing to
                # reclaim, and a bind volume's device must not be touched)
                if users.get(volume.name) or volume.options or keep(volume):
                    continue
                size = tree_size(volume.mountpoint)
                try:
                    self._destroy(volume)
                except BerthError:
                    continue
                removed.append(volume.name)
                reclaimed += size
        return removed, reclaimed

    def usage(self) -> list[tuple[Volume, int, int]]:
        """For `system df`: (volume, size in bytes, number of containers using it)."""
        users = self._users()
        return [(v, tree_size(v.mountpoint), len(users.get(v.name, ()))) for v in self.all()]


def tree_size(path: Path) -> int:
    """Bytes of the files under path (a hard-linked file counted once), not following symlinks."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*filenames, *dirnames]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _is_mount(path: str) -> bool:
    return path.rstrip("/") in _mounts_under(Path(path))


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/")
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f.read().decode().splitlines():
            point = line.split(" ", 5)[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                out.append(point)
    return out
