"""Docker's JSON for a container's mounts: HostConfig.Binds / Mounts / Tmpfs / VolumesFrom parsed into
MountPoints, and the `Mounts` list of inspect and `ps` rendered from them. The checks and messages are dockerd's
(volume/mounts/linux_parser.go), so the docker CLI prints what users know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from berth.engine.mounts import (
    DEFAULT_PROPAGATION,
    MountPoint,
    MountType,
    check_propagation,
    check_target,
    mount_config_error,
    parse_bind,
    parse_tmpfs,
    tmpfs_size_option,
)
from berth.errors import InvalidArgument


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"invalid {what}: expected a JSON object")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid {what}: expected a list of strings")
    return value


def parse_mount(raw: Any) -> MountPoint:
    """One HostConfig.Mounts entry (what `--mount` sends)."""
    m = _object(raw, "HostConfig.Mounts entry")
    kind = str(m.get("Type") or "")
    source, target = str(m.get("Source") or ""), str(m.get("Target") or "")
    read_only = bool(m.get("ReadOnly"))
    bind_opts = m.get("BindOptions")
    volume_opts = m.get("VolumeOptions")
    tmpfs_opts = m.get("TmpfsOptions")
    if kind not in ("bind", "volume", "tmpfs"):
        raise mount_config_error(kind, "mount type unknown")
    target = check_target(kind, target)
    if kind == "bind":
        if volume_opts:
            raise mount_config_error(kind, "field VolumeOptions must not be specified")
        if tmpfs_opts:
            raise mount_config_error(kind, "field TmpfsOptions must not be specified")
        if not source:
            raise mount_config_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise mount_config_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        given = _object(bind_opts, "BindOptions")
        propagation = check_propagation(kind, str(given.get("Propagation") or ""))
        if given.get("ReadOnlyNonRecursive") or given.get("ReadOnlyForceRecursive"):
            raise mount_config_error(kind, "ReadOnlyNonRecursive and ReadOnlyForceRecursive are not supported by "
                                           "berth; leave bind-recursive at its default")
        return MountPoint(MountType.BIND, target, source, read_only=read_only,
                          propagation=propagation or DEFAULT_PROPAGATION, recursive=not given.get("NonRecursive"),
                          create_source=bool(given.get("CreateMountpoint")))
    if kind == "volume":
        if bind_opts:
            raise mount_config_error(kind, "field BindOptions must not be specified")
        if tmpfs_opts:
            raise mount_config_error(kind, "field TmpfsOptions must not be specified")
        if read_only and not source:
            raise mount_config_error(kind, "must not set ReadOnly mode when using anonymous volumes")
        opts = _object(volume_opts, "VolumeOptions")
        driver = _object(opts.get("DriverConfig"), "VolumeOptions.DriverConfig")
        return MountPoint(MountType.VOLUME, target, source, read_only=read_only, mode="z",
                          copy_up=not opts.get("NoCopy"), driver=str(driver.get("Name") or "local"),
                          driver_opts={str(k): str(v) for k, v in _object(driver.get("Options"), "Options").items()},
                          labels={str(k): str(v) for k, v in _object(opts.get("Labels"), "Labels").items()},
                          anonymous=not source)
    if bind_opts:
        raise mount_config_error(kind, "field BindOptions must not be specified")
    if volume_opts:
        raise mount_config_error(kind, "field VolumeOptions must not be specified")
    if source:
        raise mount_config_error(kind, "field Source must not be specified")
    t = _object(tmpfs_opts, "TmpfsOptions")
    options = []
    size, mode = t.get("SizeBytes") or 0, t.get("Mode") or 0
    if not isinstance(size, int) or size < 0:
        raise mount_config_error(kind, f"invalid tmpfs size: {size!r}")
    if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise mount_config_error(kind, f"invalid tmpfs mode: {mode!r}")
    if size:
        options.append(tmpfs_size_option(size))
    if mode:
        options.append(f"mode={mode:o}")
    if read_only:
        options.append("ro")
    return MountPoint(MountType.TMPFS, target, read_only=read_only, tmpfs_options=tuple(options))


def parse_host_mounts(host: Mapping[str, Any]) -> tuple[MountPoint, ...]:
    """Binds, Mounts and Tmpfs of a create request, in that order (their order decides no precedence: two at
    one destination is refused at create)."""
    out = [parse_bind(b) for b in _strings(host.get("Binds"), "HostConfig.Binds")]
    mounts = host.get("Mounts") or []
    if not isinstance(mounts, list):
        raise InvalidArgument("invalid HostConfig.Mounts: expected a list")
    out += [parse_mount(m) for m in mounts]
    for target, options in _object(host.get("Tmpfs"), "HostConfig.Tmpfs").items():
        out.append(parse_tmpfs(str(target), str(options or "")))
    driver = host.get("VolumeDriver") or ""
    if driver not in ("", "local"):
        raise InvalidArgument(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    return tuple(out)


def volumes_from(host: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(_strings(host.get("VolumesFrom"), "HostConfig.VolumesFrom"))


def render_mounts(mounts: Iterable[MountPoint]) -> list[dict[str, Any]]:
    """inspect's `Mounts` (and `ps`'s): Docker's shape for each type."""
    out: list[dict[str, Any]] = []
    for m in mounts:
        if not m.shown:
            continue
        if m.type is MountType.VOLUME:
            out.append({"Type": "volume", "Name": m.source, "Source": m.host_path, "Destination": m.destination,
                        "Driver": m.driver or "local", "Mode": m.mode, "RW": not m.read_only, "Propagation": ""})
        elif m.type is MountType.BIND:
            out.append({"Type": "bind", "Source": m.source, "Destination": m.destination, "Mode": m.mode,
                        "RW": not m.read_only, "Propagation": m.propagation or DEFAULT_PROPAGATION})
        else:
            out.append({"Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": "",
                        "RW": not m.read_only, "Propagation": ""})
    return out
