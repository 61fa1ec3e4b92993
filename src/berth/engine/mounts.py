"""A container's mounts: the model (MountPoint), Docker's `-v` grammar, the checks dockerd makes, the order of
precedence (volumes-from < binds and mounts < the image's VOLUMEs), and the OCI spec mounts. Pure: no I/O here;
berth.engine.volumeuse carries these plans out.

The messages are dockerd's (volume/mounts/linux_parser.go), since clients and users match on them.
May import: berth.errors, the standard library.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from berth.errors import InvalidArgument


class MountType(StrEnum):
    BIND = "bind"
    VOLUME = "volume"
    TMPFS = "tmpfs"


_RW = {"rw", "ro"}
_LABEL = {"z", "Z"}
_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_COPY = {"nocopy"}
_CONSISTENCY = {"consistent", "cached", "delegated"}
DEFAULT_PROPAGATION = "rprivate"


@dataclass(frozen=True, slots=True)
class MountPoint:
    """One mount of a container, as requested (a draft: an anonymous volume has no name yet) or as resolved at
    create (every volume named, `host_path` set)."""
    type: MountType
    destination: str
    source: str = ""                  # bind: the host path; volume: its name ("" = anonymous, until create)
    read_only: bool = False
    mode: str = ""                    # Docker's `Mode` string, as inspect shows it
    propagation: str = ""             # bind only; "" = rprivate
    copy_up: bool = True              # volume only: fill an empty volume from the image (nocopy: False)
    driver: str = ""                  # volume only
    driver_opts: Mapping[str, str] = field(default_factory=dict)   # volume only: used if this create makes it
    labels: Mapping[str, str] = field(default_factory=dict)        # volume only: idem
    tmpfs_options: tuple[str, ...] = ()  # tmpfs only: mount options (size=..., mode=..., uid=...)
    create_source: bool = False       # bind from HostConfig.Binds: a missing host directory is made at start
    anonymous: bool = False           # a volume made for this container: `rm -v` removes it
    shown: bool = True                # False for HostConfig.Tmpfs: Docker leaves those out of inspect's Mounts
    host_path: str = ""               # resolved: the volume's _data directory
    recursive: bool = True            # bind only: False = the source's submounts are not carried along

    def to_json(self) -> dict[str, Any]:
        return {"type": str(self.type), "destination": self.destination, "source": self.source,
                "read_only": self.read_only, "mode": self.mode, "propagation": self.propagation,
                "copy_up": self.copy_up, "driver": self.driver, "driver_opts": dict(self.driver_opts),
                "labels": dict(self.labels), "tmpfs_options": list(self.tmpfs_options),
                "create_source": self.create_source, "anonymous": self.anonymous, "shown": self.shown,
                "host_path": self.host_path, "recursive": self.recursive}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MountPoint:
        return cls(MountType(raw["type"]), str(raw["destination"]), str(raw.get("source", "")),
                   bool(raw.get("read_only")), str(raw.get("mode", "")), str(raw.get("propagation", "")),
                   bool(raw.get("copy_up", True)), str(raw.get("driver", "")), dict(raw.get("driver_opts") or {}),
                   dict(raw.get("labels") or {}), tuple(raw.get("tmpfs_options") or ()),
                   bool(raw.get("create_source")), bool(raw.get("anonymous")), bool(raw.get("shown", True)),
                   str(raw.get("host_path", "")), bool(raw.get("recursive", True)))


def mount_config_error(kind: str, why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {why}')


def check_target(kind: str, target: str) -> str:
    if not target:
        raise mount_config_error(kind, "field Target must not be empty")
    if posixpath.normpath(target) == "/" and target.startswith("/"):
        raise mount_config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise mount_config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    return posixpath.normpath(target)


def _valid_mode(mode: str) -> bool:
    if not mode:
        return True
    seen: dict[str, int] = {}
    for word in mode.split(","):
        for name, group in (("rw", _RW), ("label", _LABEL), ("propagation", _PROPAGATION), ("copy", _COPY),
                            ("consistency", _CONSISTENCY)):
            if word in group:
                seen[name] = seen.get(name, 0) + 1
                break
        else:
            return False
    return all(n == 1 for n in seen.values())


def parse_bind(raw: str) -> MountPoint:
    """One HostConfig.Binds entry: `[source:]target[:mode]`; a source that is an absolute path is a bind mount,
    any other a named volume."""
    parts = raw.split(":")
    if any(p == "" for p in parts) or not 1 <= len(parts) <= 3:
        raise InvalidArgument(f"invalid volume specification: '{raw}'")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]) and not parts[1].startswith("/"):
            source, target, mode = "", parts[0], parts[1]
        else:
            source, target = parts
    else:
        source, target, mode = parts
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    words = set(mode.split(",")) if mode else set()
    kind = MountType.BIND if source.startswith("/") else MountType.VOLUME
    try:
        target = check_target(str(kind), target)
        if kind is MountType.BIND:
            if "nocopy" in words:
                raise mount_config_error("bind", "field VolumeOptions must not be specified")
            source = posixpath.normpath(source)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid volume specification: '{raw}': {exc}") from None
    propagation = next((w for w in words if w in _PROPAGATION), "")
    if kind is MountType.VOLUME:
        if propagation:
            raise InvalidArgument(f"invalid volume specification: '{raw}': invalid mount config for type "
                                  f'"volume": field BindOptions must not be specified')
        return MountPoint(kind, target, source, read_only="ro" in words, mode=mode or "z",
                          copy_up="nocopy" not in words, driver="local", anonymous=not source)
    return MountPoint(kind, target, source, read_only="ro" in words, mode=mode,
                      propagation=propagation or DEFAULT_PROPAGATION, create_source=True)


def check_propagation(kind: str, propagation: str) -> str:
    if propagation and propagation not in _PROPAGATION:
        raise mount_config_error(kind, f"invalid propagation mode: {propagation}")
    return propagation


def tmpfs_size_option(size: int) -> str:
    """Docker writes a tmpfs size with the largest unit that divides it evenly."""
    for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % unit == 0:
            return f"size={size // unit}{suffix}"
    return f"size={size}"


def parse_tmpfs(target: str, options: str) -> MountPoint:
    """One HostConfig.Tmpfs entry (`--tmpfs /path:opts`)."""
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{target}' mount path must be absolute")
    target = check_target("tmpfs", target)
    words = tuple(w for w in options.split(",") if w)
    return MountPoint(MountType.TMPFS, target, read_only="ro" in words, tmpfs_options=words, shown=False)


def image_volume(target: str) -> MountPoint:
    """A VOLUME of the image or of Config.Volumes (`-v /path`): an anonymous volume, Mode ""."""
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"volume\": invalid mount path: '{target}' mount "
                              "path must be absolute")
    return MountPoint(MountType.VOLUME, check_target("volume", target), driver="local", anonymous=True)


def from_other(m: MountPoint, mode: str) -> MountPoint:
    """A mount copied by --volumes-from (mode "" or "ro"): Mode "" and no copy-up, as dockerd copies them. An
    anonymous volume stays anonymous: `rm -v` of whichever container uses it last removes it (dockerd's rule)."""
    return replace(m, read_only=m.read_only or mode == "ro", mode="", copy_up=False)


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """`container[:ro|rw]` -> (container, mode)."""
    ref, _, mode = spec.partition(":")
    if not ref or mode not in ("", "ro", "rw", "z", "Z"):
        raise InvalidArgument(f"invalid mode: {mode}" if ref else f"invalid volumes-from specification: {spec!r}")
    return ref, "ro" if mode == "ro" else ""


def merge(inherited: Sequence[MountPoint], requested: Sequence[MountPoint],
          image_volumes: Iterable[str]) -> list[MountPoint]:
    """Docker's precedence: --volumes-from first, replaced by -v/--mount at the same destination (two of those at
    one destination is an error), then anonymous volumes for the image's VOLUMEs not mounted otherwise."""
    chosen: dict[str, MountPoint] = {m.destination: m for m in inherited}
    explicit: set[str] = set()
    for m in requested:
        if m.destination in explicit:
            raise InvalidArgument(f"Duplicate mount point: {m.destination}")
        explicit.add(m.destination)
        chosen[m.destination] = m
    for target in image_volumes:
        m = image_volume(target)
        chosen.setdefault(m.destination, m)
    return ordered(chosen.values())


def ordered(mounts: Iterable[MountPoint]) -> list[MountPoint]:
    """Parents before children (by path depth, as Docker sorts), so /a is mounted before /a/b covers part of it."""
    return sorted(mounts, key=lambda m: (len([p for p in m.destination.split("/") if p]), m.destination))


def spec_mounts(mounts: Sequence[MountPoint]) -> list[dict[str, Any]]:
    """The OCI mounts of resolved mount points, in order."""
    out = []
    for m in ordered(mounts):
        if m.type is MountType.TMPFS:
            options = ["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION, *m.tmpfs_options]
            out.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            continue
        source = m.host_path if m.type is MountType.VOLUME else m.source
        if not source:
            raise InvalidArgument(f"mount {m.destination} has no source: the container was not created right")
        options = ["rbind" if m.recursive else "bind", m.propagation or DEFAULT_PROPAGATION]
        if m.read_only:
            options.append("ro")
        out.append({"destination": m.destination, "type": "bind", "source": source, "options": options})
    return out


def replaces_default(default_destination: str, mounts: Sequence[MountPoint]) -> bool:
    """A user mount at /dev/shm (or /etc/hosts, /dev ...) takes the place of Docker's default mount there."""
    targets = {m.destination for m in mounts}
    return default_destination in targets or (default_destination.startswith("/dev/") and "/dev" in targets)


def rootfs_propagation(mounts: Sequence[MountPoint]) -> str | None:
    """A shared or slave bind needs the container's root to be so too (runc and Docker do the same)."""
    props = {m.propagation for m in mounts if m.type is MountType.BIND}
    if props & {"shared", "rshared"}:
        return "rshared"
    if props & {"slave", "rslave"}:
        return "rslave"
    return None


def volume_names(mounts: Iterable[MountPoint]) -> list[str]:
    return [m.source for m in mounts if m.type is MountType.VOLUME and m.source]
