"""`berth info` and `berth version`: the daemon's /info and /version, shown as docker shows them.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import sys
from typing import Any

from berth import __version__
from berth.cli.context import Ctx
from berth.cli.formatter import FormatError
from berth.cli.gotemplate import Template, TemplateError
from berth.cli.gotypes import JsonStruct
from berth.client.transport import CLIENT_MAX_API
from berth.errors import BerthError

BERTH_VERSION = __version__


def _client_info(ctx: Ctx, api: str | None) -> dict[str, Any]:
    return {
        "Platform": {"Name": "berth"},
        "Version": BERTH_VERSION,
        "ApiVersion": api or CLIENT_MAX_API,
        "DefaultAPIVersion": CLIENT_MAX_API,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform if sys.platform != "linux" else "linux",
        "Arch": _go_arch(platform.machine()),
        "Context": "default",
        "Host": str(ctx.host),
    }


def _go_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _execute(fmt: str, data: Any, type_name: str, name: str = "") -> tuple[str, FormatError | None]:
    """Run a --format template as docker's info/version do: a parse error exits 64; an execution error keeps the
    partial output, adds the newline, and exits 1 with Go's message."""
    try:
        tmpl = Template(fmt, name=name)
    except TemplateError as exc:
        prefix = "template parsing error: " if not name else ""
        raise FormatError(f"{prefix}{exc}", exit_code=64) from exc
    text, err = tmpl.run(JsonStruct(data, type_name) if isinstance(data, dict) else data)
    return text + "\n", (FormatError(str(err)) if err else None)


_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


def reformat_date(text: str) -> str:
    """docker's reformatDate: an RFC 3339 build time shown as Go's time.ANSIC ("Thu May  7 21:09:36 2026")."""
    m = _RFC3339.match(text)
    if not m:
        return text
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        t = datetime.datetime(y, mo, d, h, mi, sec)
    except ValueError:
        return text
    return t.strftime("%a %b ") + f"{t.day:>2}" + t.strftime(" %H:%M:%S %Y")


def run_version(ctx: Ctx, a: argparse.Namespace) -> int:
    server: dict[str, Any] | None = None
    server_error: BerthError | None = None
    if a.format:
        Template(a.format if a.format != "json" else "{{json .}}", name="version")  # parse errors before any call
    try:
        server = ctx.client.get_json("/version")
        api: str | None = ctx.client.api_version
    except BerthError as exc:
        server_error, api = exc, None
    for comp in (server or {}).get("Components") or []:
        if comp.get("Name") == "Engine" and isinstance(comp.get("Details"), dict) and "BuildTime" in comp["Details"]:
            comp["Details"]["BuildTime"] = reformat_date(str(comp["Details"]["BuildTime"]))
    client = _client_info(ctx, api)
    if a.format:
        fmt = "{{json .}}" if a.format == "json" else a.format
        text, err = _execute(fmt, {"Client": client, "Server": server}, "system.versionInfo", name="version")
        ctx.out.write(text)
        if err is not None:
            raise err
    else:
        lines = ["Client:", f" Version:           {client['Version']}"]
        api_line = client["ApiVersion"]
        if api and api != CLIENT_MAX_API:
            api_line += f" (downgraded from {CLIENT_MAX_API})"
        lines += [f" API version:       {api_line}", f" Python version:    {client['PythonVersion']}",
                  f" OS/Arch:           {client['Os']}/{client['Arch']}", f" Context:           {client['Context']}"]
        if server is not None:
            lines += ["", "Server:" + (f" {server['Platform']['Name']}" if (server.get("Platform") or {}).get("Name")
                                       else "")]
            for comp in server.get("Components") or []:
                lines.append(f" {comp.get('Name')}:")
                details = comp.get("Details") or {}
                if comp.get("Name") == "Engine":
                    lines += [
                        f"  Version:          {comp.get('Version', '')}",
                        f"  API version:      {details.get('ApiVersion', server.get('ApiVersion', ''))} "
                        f"(minimum version {details.get('MinAPIVersion', server.get('MinAPIVersion', ''))})",
                        f"  Go version:       {details.get('GoVersion', '')}",
                        f"  Git commit:       {details.get('GitCommit', '')}",
                        f"  Built:            {details.get('BuildTime', '')}",
                        f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch', '')}",
                        f"  Experimental:     {details.get('Experimental', 'false')}",
                    ]
                else:
                    lines.append(f"  Version:          {comp.get('Version', '')}")
                    for k, v in details.items():
                        lines.append(f"  {k + ':':<18}{v}")
        ctx.out.write("\n".join(lines) + "\n")
    if server_error is not None:
        raise server_error
    return 0


def run_info(ctx: Ctx, a: argparse.Namespace) -> int:
    info: dict[str, Any] = ctx.client.get_json("/info")
    if a.format:
        data = dict(info)
        data["ClientInfo"] = _client_info(ctx, ctx.client.api_version)
        fmt = "{{json .}}" if a.format == "json" else a.format
        text, err = _execute(fmt, data, "system.dockerInfo")
        ctx.out.write(text)
        if err is not None:
            raise err
        return 0
    ci = _client_info(ctx, ctx.client.api_version)
    out = ["Client:", f" Version:    {ci['Version']}", f" Context:    {ci['Context']}", " Debug Mode: false", "",
           "Server:"]
    out += server_info_lines(info)
    ctx.out.write("\n".join(out) + "\n\n")
    for w in info.get("Warnings") or []:
        ctx.err.write(f"{w}\n")
    return 0


def _go_bool(v: Any) -> str:
    return "true" if v else "false"


def server_info_lines(info: dict[str, Any]) -> list[str]:
    """The Server section of `docker info`, line by line in docker's order; empty fields skipped where docker
    skips them."""
    g = info.get
    out: list[str] = []

    def non_empty(label: str, value: Any) -> None:
        if value not in (None, ""):
            out.append(f" {label} {value}")

    out += [f" Containers: {g('Containers', 0)}", f"  Running: {g('ContainersRunning', 0)}",
            f"  Paused: {g('ContainersPaused', 0)}", f"  Stopped: {g('ContainersStopped', 0)}",
            f" Images: {g('Images', 0)}"]
    non_empty("Server Version:", g("ServerVersion"))
    non_empty("Storage Driver:", g("Driver"))
    out += [f"  {pair[0]}: {pair[1]}" for pair in g("DriverStatus") or [] if len(pair) == 2]
    out += [f" {pair[0]}: {pair[1]}" for pair in g("SystemStatus") or [] if len(pair) == 2]
    non_empty("Logging Driver:", g("LoggingDriver"))
    non_empty("Cgroup Driver:", g("CgroupDriver"))
    non_empty("Cgroup Version:", g("CgroupVersion"))
    plugins = g("Plugins") or {}
    out += [" Plugins:", f"  Volume: {' '.join(plugins.get('Volume') or [])}",
            f"  Network: {' '.join(plugins.get('Network') or [])}"]
    if plugins.get("Authorization"):
        out.append(f"  Authorization: {' '.join(plugins['Authorization'])}")
    out.append(f"  Log: {' '.join(plugins.get('Log') or [])}")
    if g("CDISpecDirs"):
        out.append(" CDI spec directories:")
        out += [f"  {d}" for d in g("CDISpecDirs") or []]
    out.append(f" Swarm: {(g('Swarm') or {}).get('LocalNodeState', '')}")
    runtimes = g("Runtimes") or {}
    if runtimes:
        out.append(f" Runtimes: {' '.join(runtimes)}")  # docker ranges over a Go map: any order
        out.append(f" Default Runtime: {g('DefaultRuntime', '')}")
    if g("OSType") == "linux":
        out += [f" Init Binary: {g('InitBinary', '')}",
                f" containerd version: {(g('ContainerdCommit') or {}).get('ID', '')}",
                f" runc version: {(g('RuncCommit') or {}).get('ID', '')}",
                f" init version: {(g('InitCommit') or {}).get('ID', '')}"]
        if g("SecurityOptions"):
            out.append(" Security Options:")
            for opt in g("SecurityOptions") or []:
                fields = dict(kv.partition("=")[::2] for kv in str(opt).split(","))
                out.append(f"  {fields.get('name', '')}")
                if "profile" in fields:
                    out.append(f"   Profile: {fields['profile']}")
    non_empty("Kernel Version:", g("KernelVersion"))
    non_empty("Operating System:", g("OperatingSystem"))
    non_empty("OSType:", g("OSType"))
    non_empty("Architecture:", g("Architecture"))
    out += [f" CPUs: {g('NCPU', 0)}", f" Total Memory: {_binary_size(int(g('MemTotal') or 0))}"]
    non_empty("Name:", g("Name"))
    non_empty("ID:", g("ID"))
    out += [f" Docker Root Dir: {g('DockerRootDir', '')}", f" Debug Mode: {_go_bool(g('Debug'))}"]
    if g("Debug"):
        out += [f"  File Descriptors: {g('NFd', 0)}", f"  Goroutines: {g('NGoroutines', 0)}",
                f"  System Time: {g('SystemTime', '')}", f"  EventsListeners: {g('NEventsListener', 0)}"]
    non_empty("HTTP Proxy:", g("HttpProxy"))
    non_empty("HTTPS Proxy:", g("HttpsProxy"))
    non_empty("No Proxy:", g("NoProxy"))
    if g("Labels"):
        out.append(" Labels:")
        out += [f"  {label}" for label in g("Labels") or []]
    out.append(f" Experimental: {_go_bool(g('ExperimentalBuild'))}")
    registry = g("RegistryConfig") or {}
    cidrs = registry.get("InsecureRegistryCIDRs") or []
    index_configs = registry.get("IndexConfigs") or {}
    if cidrs or index_configs:
        out.append(" Insecure Registries:")
        out += [f"  {c.get('Name', name)}" for name, c in index_configs.items() if not c.get("Secure")]
        out += [f"  {_cidr(c)}" for c in cidrs]
    if registry.get("Mirrors"):
        out.append(" Registry Mirrors:")
        out += [f"  {m}" for m in registry["Mirrors"]]
    out.append(f" Live Restore Enabled: {_go_bool(g('LiveRestoreEnabled'))}")
    if g("ProductLicense"):
        out.append(f" Product License: {g('ProductLicense')}")
    if g("DefaultAddressPools"):
        out.append(" Default Address Pools:")
        out += [f"   Base: {p.get('Base')}, Size: {p.get('Size')}" for p in g("DefaultAddressPools") or []]
    return out


def _cidr(entry: Any) -> str:
    """An insecure-registry CIDR as the daemon's JSON has it: {"IP": "127.0.0.0", "Mask": base64 bytes}."""
    if isinstance(entry, str):
        return entry
    import base64

    try:
        mask = base64.b64decode(entry.get("Mask") or "")
    except ValueError:
        mask = b""
    return f"{entry.get('IP', '')}/{sum(bin(b).count('1') for b in mask)}"


def _binary_size(n: int) -> str:
    """go-units BytesSize: "%.4g" with binary units (docker info's Total Memory)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.4g}{units[i]}"

