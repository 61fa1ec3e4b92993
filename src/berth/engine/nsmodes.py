"""PidMode, IpcMode and UTSMode: a container sharing the host's or another container's pid, IPC or UTS namespace
(`--pid host`, `--pid container:X`, `--ipc host|none|shareable|private|container:X`, `--uts host`; compose's
`pid:`, `ipc:` and their `service:` forms).

specgen builds a spec with private namespaces; `apply` turns it into the one these modes ask for: a namespace
left out (the host's), or joined by path (a running container's, /proc/<pid>/ns/<type>). A joined IPC namespace
shares System V IPC and POSIX message queues; the joining container keeps its own /dev/shm (dockerd mounts one shm
for both from the host; berth's /dev/shm lives in each container's mount namespace).

May import: berth.engine.containers, berth.errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from berth.engine.containers import Container, ContainerConfig, Status
from berth.errors import Conflict, InvalidArgument

_ALLOWED = {
    "PidMode": ("", "host"),
    "IpcMode": ("", "private", "shareable", "none", "host"),
    "UTSMode": ("", "host"),
}
_JOINABLE = ("PidMode", "IpcMode")
_NS_TYPE = {"PidMode": "pid", "IpcMode": "ipc", "UTSMode": "uts"}


def parse_mode(field: str, value: object) -> str:
    """A HostConfig mode as the API gives it (None or a string); InvalidArgument for anything dockerd refuses."""
    text = "" if value is None else value
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid {field}: expected a string")
    if text in _ALLOWED[field]:
        return text
    if field in _JOINABLE and text.startswith("container:") and text.partition(":")[2]:
        return text
    kind = {"PidMode": "PID", "IpcMode": "IPC", "UTSMode": "UTS"}[field]
    raise InvalidArgument(f"invalid {kind} mode: {text}")


def apply(spec: Mapping[str, Any], config: ContainerConfig, get: Callable[[str], Container]) -> dict[str, Any]:
    """The spec with config's pid, IPC and UTS modes. get(ref) finds the container a `container:` mode names."""
    out = dict(spec)
    linux = dict(out.get("linux") or {})
    namespaces: list[dict[str, Any]] = [dict(ns) for ns in linux.get("namespaces") or []]
    mounts: list[dict[str, Any]] = [dict(m) for m in out.get("mounts") or []]
    for field, mode in (("PidMode", config.pid_mode), ("IpcMode", config.ipc_mode), ("UTSMode", config.uts_mode)):
        ns_type = _NS_TYPE[field]
        if mode == "host":
            namespaces = [ns for ns in namespaces if ns.get("type") != ns_type]
        elif mode.startswith("container:"):
            pid = _running_pid(get, mode.partition(":")[2], ns_type)
            namespaces = [ns for ns in namespaces if ns.get("type") != ns_type] + [
                {"type": ns_type, "path": f"/proc/{pid}/ns/{ns_type}"}]
    if config.ipc_mode == "host":        # the host's IPC, and its /dev/shm with it
        mounts = [m for m in mounts if m.get("destination") != "/dev/shm"] + [
            {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]}]
    elif config.ipc_mode == "none":      # no /dev/shm at all
        mounts = [m for m in mounts if m.get("destination") != "/dev/shm"]
    if config.uts_mode == "host":        # no UTS namespace of its own: no hostname to set
        out.pop("hostname", None)
        out.pop("domainname", None)
    linux["namespaces"] = namespaces
    out["linux"] = linux
    out["mounts"] = mounts
    return out


def _running_pid(get: Callable[[str], Container], ref: str, ns_type: str) -> int:
    other = get(ref)
    if other.state.status not in (Status.RUNNING, Status.PAUSED) or other.state.pid <= 0:
        what = "PID" if ns_type == "pid" else "IPC"
        raise Conflict(f"cannot join {what} of a non running container: {ref}")
    return other.state.pid
