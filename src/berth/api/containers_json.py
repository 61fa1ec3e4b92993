"""Docker's JSON for containers: the create body parsed into a ContainerConfig draft, and inspect / list items
rendered from records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth.api import mounts_json
from berth.api.health_json import health_json, status_suffix
from berth.api.images_json import container_config
from berth.api.networks import parse_networking
from berth.engine import nsmodes
from berth.engine.containers import Container, ContainerConfig, RestartPolicy, Status, Ulimit
from berth.errors import InvalidArgument
from berth.oci.config import rfc3339_to_unix
from berth.util.humanize import human_duration

_RESTART = {"", "no", "always", "unless-stopped", "on-failure"}


def _strs(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid {what}: expected a list of strings")
    return tuple(value)


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"invalid {key}: {value!r} is not an integer")
    return value


def parse_create(body: Mapping[str, Any]) -> ContainerConfig:
    """The create request's Config + HostConfig as a draft (image defaults are merged by the engine)."""
    if not isinstance(body, Mapping):
        raise InvalidArgument("the create request body must be a JSON object")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise InvalidArgument("Config.Image must be the name of an image")
    host = body.get("HostConfig") or {}
    entrypoint = _strs(body.get("Entrypoint"), "Entrypoint")
    if entrypoint == ("",):
        entrypoint = ()    # `--entrypoint ""`: no entrypoint at all, not even the image's
    policy = host.get("RestartPolicy") or {}
    policy_name = policy.get("Name") or "no"
    if policy_name not in _RESTART:
        raise InvalidArgument(f"invalid restart policy {policy_name!r}: use no, always, unless-stopped or "
                              f"on-failure[:max-retries]")
    retries = int(policy.get("MaximumRetryCount") or 0)
    if retries and policy_name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{policy_name}'")
    for key in ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod", "ShmSize"):
        if (host.get(key) or 0) < -1 or (key not in ("MemorySwap", "CpuQuota") and (host.get(key) or 0) < 0):
            raise InvalidArgument(f"invalid {key}: {host.get(key)} must not be negative")
    if host.get("Memory") and 0 < host["Memory"] < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if host.get("NanoCpus") and (host.get("CpuQuota") or host.get("CpuPeriod")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
    ulimits = tuple(Ulimit(str(u.get("Name")), int(u.get("Soft", 0)), int(u.get("Hard", 0)))
                    for u in host.get("Ulimits") or ())
    log_opts = (host.get("LogConfig") or {}).get("Config") or {}
    ports = tuple(sorted((body.get("ExposedPorts") or {}).keys()))
    console = host.get("ConsoleSize") or [0, 0]
    return ContainerConfig(
        image=image, image_id=None, args=(),  # type: ignore[arg-type]  # filled in by the engine's merge
        cmd=_strs(body.get("Cmd"), "Cmd"), entrypoint=entrypoint, env=_strs(body.get("Env"), "Env") or (),
        working_dir=str(body.get("WorkingDir") or ""), user=str(body.get("User") or ""),
        hostname=str(body.get("Hostname") or ""), domainname=str(body.get("Domainname") or ""),
        tty=bool(body.get("Tty")), open_stdin=bool(body.get("OpenStdin")), stdin_once=bool(body.get("StdinOnce")),
        attach_stdin=bool(body.get("AttachStdin")), attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")), labels=dict(body.get("Labels") or {}),
        stop_signal=str(body.get("StopSignal") or ""),
        stop_timeout=body.get("StopTimeout") if isinstance(body.get("StopTimeout"), int) else None,
        exposed_ports=ports, volumes=tuple(sorted((body.get("Volumes") or {}).keys())),
        healthcheck=body.get("Healthcheck") or None,
        auto_remove=bool(host.get("AutoRemove")), restart_policy=RestartPolicy(policy_name, retries),
        network_mode=str(host.get("NetworkMode") or "default"),
        memory=_int(host, "Memory"), memory_swap=_int(host, "MemorySwap"),
        memory_reservation=_int(host, "MemoryReservation"), nano_cpus=_int(host, "NanoCpus"),
        cpu_shares=_int(host, "CpuShares"), cpu_period=_int(host, "CpuPeriod"), cpu_quota=_int(host, "CpuQuota"),
        cpuset_cpus=str(host.get("CpusetCpus") or ""), cpuset_mems=str(host.get("CpusetMems") or ""),
        pids_limit=_int(host, "PidsLimit"), oom_kill_disable=bool(host.get("OomKillDisable")),
        oom_score_adj=_int(host, "OomScoreAdj"), ulimits=ulimits, readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        privileged=bool(host.get("Privileged")), cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()), security_opt=tuple(host.get("SecurityOpt") or ()),
        group_add=tuple(str(g) for g in host.get("GroupAdd") or ()), shm_size=_int(host, "ShmSize") or 64 << 20,
        init=bool(host.get("Init")), sysctls=dict(host.get("Sysctls") or {}),
        pid_mode=nsmodes.parse_mode("PidMode", host.get("PidMode")),
        ipc_mode=nsmodes.parse_mode("IpcMode", host.get("IpcMode")),
        uts_mode=nsmodes.parse_mode("UTSMode", host.get("UTSMode")),
        log_max_size=_size(str(log_opts.get("max-size") or "0")), log_max_file=int(log_opts.get("max-file") or 1),
        runtime=str(host.get("Runtime") or "berth"), console_size=(int(console[0] or 0), int(console[1] or 0)),
        extra={"HostConfig": dict(host)}, networking=parse_networking(body, host),
        mounts=mounts_json.parse_host_mounts(host), volumes_from=mounts_json.volumes_from(host),
    )


def _size(text: str) -> int:
    units = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    value = text.strip().lower()
    num = value.rstrip("kmgb")
    unit = value[len(num):].rstrip("b")
    if not num.isdigit() or unit not in units:
        raise InvalidArgument(f"invalid size: {text!r}")
    return int(num) * units[unit]


def _state(c: Container) -> dict[str, Any]:
    s = c.state
    return {"Status": str(s.status), "Running": s.status in (Status.RUNNING, Status.PAUSED),
            "Paused": s.status is Status.PAUSED, "Restarting": s.status is Status.RESTARTING,
            "OOMKilled": s.oom_killed, "Dead": s.status is Status.DEAD, "Pid": s.pid, "ExitCode": s.exit_code,
            "Error": s.error, "StartedAt": s.started_at or "0001-01-01T00:00:00Z",
            "FinishedAt": s.finished_at or "0001-01-01T00:00:00Z",
            **({"Health": health_json(s.health)} if s.health else {})}


def _config(c: Container) -> dict[str, Any]:
    cfg = c.config
    raw: dict[str, Any] = {
        "Hostname": cfg.hostname, "Domainname": cfg.domainname, "User": cfg.user,
        "AttachStdin": cfg.attach_stdin, "AttachStdout": cfg.attach_stdout, "AttachStderr": cfg.attach_stderr,
        "ExposedPorts": {p: {} for p in cfg.exposed_ports} or None, "Tty": cfg.tty, "OpenStdin": cfg.open_stdin,
        "StdinOnce": cfg.stdin_once, "Env": list(cfg.env), "Cmd": list(cfg.cmd) if cfg.cmd is not None else None,
        "Healthcheck": dict(cfg.healthcheck) if cfg.healthcheck else None, "Image": cfg.image,
        "Volumes": {v: {} for v in cfg.volumes} or None, "WorkingDir": cfg.working_dir,
        "Entrypoint": list(cfg.entrypoint) if cfg.entrypoint is not None else None,
        "Labels": dict(cfg.labels), "StopSignal": cfg.stop_signal, "StopTimeout": cfg.stop_timeout,
    }
    out = container_config(raw)
    out["OnBuild"] = None
    out["Labels"] = dict(cfg.labels)
    return out


def _host_config(c: Container) -> dict[str, Any]:
    cfg = c.config
    given = dict(cfg.extra.get("HostConfig") or {})
    out: dict[str, Any] = {
        "Binds": given.get("Binds"), "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": (
            given.get("LogConfig") or {}).get("Config") or {}},
        "NetworkMode": cfg.network_mode, "PortBindings": given.get("PortBindings") or {},
        "RestartPolicy": {"Name": cfg.restart_policy.name, "MaximumRetryCount": cfg.restart_policy.maximum_retry_count},
        "AutoRemove": cfg.auto_remove, "VolumeDriver": "", "VolumesFrom": given.get("VolumesFrom"),
        "ConsoleSize": list(cfg.console_size), "CapAdd": list(cfg.cap_add) or None, "CapDrop": list(cfg.cap_drop) or None,
        "CgroupnsMode": "host", "Dns": given.get("Dns") or [], "DnsOptions": given.get("DnsOptions") or [],
        "DnsSearch": given.get("DnsSearch") or [], "ExtraHosts": given.get("ExtraHosts"),
        "GroupAdd": list(cfg.group_add) or None, "IpcMode": cfg.ipc_mode or "private", "Cgroup": "",
        "Links": [f"/{k.name}:/{c.name}/{k.alias}" for k in cfg.networking.links] or None,
        "OomScoreAdj": cfg.oom_score_adj, "PidMode": cfg.pid_mode, "Privileged": cfg.privileged, "PublishAllPorts": bool(
            given.get("PublishAllPorts")), "ReadonlyRootfs": cfg.readonly_rootfs,
        "SecurityOpt": list(cfg.security_opt) or None, "UTSMode": cfg.uts_mode, "UsernsMode": "", "ShmSize": cfg.shm_size,
        "Runtime": cfg.runtime, "Isolation": "", "CpuShares": cfg.cpu_shares, "Memory": cfg.memory,
        "NanoCpus": cfg.nano_cpus, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": cfg.cpu_period, "CpuQuota": cfg.cpu_quota, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": cfg.cpuset_cpus, "CpusetMems": cfg.cpuset_mems, "Devices": [], "DeviceCgroupRules": None,
        "DeviceRequests": None, "MemoryReservation": cfg.memory_reservation,
        "MemorySwap": cfg.memory_swap or 2 * cfg.memory,      # dockerd records its default (and berth applies it)
        "MemorySwappiness": None, "OomKillDisable": cfg.oom_kill_disable,
        "PidsLimit": cfg.pids_limit or None,
        "Ulimits": [{"Name": u.name, "Hard": u.hard, "Soft": u.soft} for u in cfg.ulimits] or None,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "Init": cfg.init or None,
        "MaskedPaths": None if cfg.privileged else ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                                     "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                                     "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "ReadonlyPaths": None if cfg.privileged else ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                       "/proc/sysrq-trigger"],
    }
    for key in ("Mounts", "Tmpfs", "Sysctls"):   # omitted when empty, as dockerd does
        if given.get(key):
            out[key] = given[key]
    return out


def inspect(c: Container, log_path: str, graph: dict[str, str]) -> dict[str, Any]:
    args = list(c.config.args)
    return {
        "Id": c.id, "Created": c.created, "Path": args[0] if args else "", "Args": args[1:], "State": _state(c),
        "Image": str(c.config.image_id), "ResolvConfPath": str(c.dir / "resolv.conf"),
        "HostnamePath": str(c.dir / "hostname"), "HostsPath": str(c.dir / "hosts"), "LogPath": log_path,
        "Name": "/" + c.name, "RestartCount": c.state.restart_count, "Driver": "overlay2", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": _host_config(c), "GraphDriver": {"Data": graph or None, "Name": "overlay2"},
        "Mounts": mounts_json.render_mounts(c.config.mounts),
        "Config": _config(c),
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
                            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
                            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                            "MacAddress": "", "Networks": {}},
    }


def status_text(c: Container, now: float) -> str:
    s = c.state
    if s.status is Status.CREATED:
        return "Created"
    if s.status in (Status.RUNNING, Status.PAUSED):
        text = f"Up {human_duration(now - rfc3339_to_unix(s.started_at))}"
        return text + " (Paused)" if s.status is Status.PAUSED else text + status_suffix(c)
    if s.status is Status.RESTARTING:
        return f"Restarting ({s.exit_code}) {human_duration(now - rfc3339_to_unix(s.finished_at))} ago"
    if s.status is Status.DEAD:
        return "Dead"
    if s.status is Status.REMOVING:
        return "Removal In Progress"
    return f"Exited ({s.exit_code}) {human_duration(now - rfc3339_to_unix(s.finished_at))} ago"


def list_item(c: Container, now: float) -> dict[str, Any]:
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.config.image, "ImageID": str(c.config.image_id),
        "Command": " ".join(c.config.args), "Created": rfc3339_to_unix(c.created), "Ports": [], "Labels": dict(c.config.labels),
        "State": str(c.state.status), "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": c.config.network_mode}, "NetworkSettings": {"Networks": {}},
        "Mounts": mounts_json.render_mounts(c.config.mounts),
    }
