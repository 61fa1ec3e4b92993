"""Container commands other than run/create/start/attach/exec: ps, logs, stop, kill, rm, restart, pause, unpause,
rename, wait, top, diff, export, commit, port, update, container prune, container inspect.

Rows for `ps --format` are gotemplate Records with the fields and Go type name of docker's ContainerContext.
May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import re
import time

from berth.cli.context import Ctx, UsageError
from berth.cli.formatter import render_list
from berth.cli.gotemplate import GoNil, Method, Record
from berth.cli.units import ellipsis, go_time_string, human_duration, human_size, truncate_id
from berth.client.transport import from_daemon, path_segment
from berth.errors import BerthError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any


def daemon_message(err: BaseException) -> str:
    status = from_daemon(err)
    return f"Error response from daemon: {status.message}" if status is not None else str(err)


def parse_filters(items: Iterable[str]) -> dict[str, dict[str, bool]]:
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter (expected '
                             "name=value)", usage=True)
        out.setdefault(key.strip().lower(), {})[value] = True
    return out


# ---- ps --------------------------------------------------------------------------------------------------------

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_RAW = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n"
          "state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
          "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n")
PS_HEADER: dict[str, Any] = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
    "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Names": "NAMES",
    "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
    # docker heads a {{.Label "com.example.some-key"}} column with the key's last part: "some key"
    "Label": Method(lambda name: name.split(".")[-1].replace("-", " ").replace("_", " ")),
}


def ps_format(source: str, quiet: bool, size: bool) -> str:
    if source == "table":
        if quiet:
            return "{{.ID}}"
        return PS_TABLE + ("\t{{.Size}}" if size else "")
    if source == "raw":
        if quiet:
            return "container_id: {{.ID}}"
        return PS_RAW + ("size: {{.Size}}\n" if size else "")
    return source


def go_quote(text: str) -> str:
    """strconv.Quote for the printable text containers' commands are made of."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: consecutive private ports grouped into ranges, then the host mappings."""
    def key(p: dict[str, Any]) -> tuple[int, str, int, str]:
        return (int(p.get("PrivatePort") or 0), str(p.get("IP") or ""), int(p.get("PublicPort") or 0),
                str(p.get("Type") or ""))

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for p in sorted(ports, key=key):
        current, ip, public, proto = key(p)
        group_key = proto
        if ip:
            if public != current:
                mappings.append(f"{join_host_port(ip, str(public))}->{current}/{proto}")
                continue
            group_key = f"{ip}/{proto}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [current, current]
            order.append(group_key)
            continue
        if current == group[1] + 1:
            group[1] = current
            continue
        result.append(_form_group(group_key, group[0], group[1]))
        groups[group_key] = [current, current]
    result += [_form_group(k, *groups[k]) for k in order]
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{proto}"


_PLAIN_IMAGE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[\w][\w.-]{0,127})?")


def _image_column(c: dict[str, Any], trunc: bool) -> str:
    image = str(c.get("Image") or "")
    if not image:
        return "<no image>"
    if not trunc:
        return image
    if truncate_id(str(c.get("ImageID") or "")) == truncate_id(image):
        return truncate_id(image)
    if _PLAIN_IMAGE.fullmatch(image):
        return image   # already familiar ("busybox", "busybox:1"): spare the reference parser's regexes
    from berth.cli.refs import try_familiar

    parsed = try_familiar(image)
    if parsed is None:
        return image
    name, tag, _digest = parsed
    return f"{name}:{tag}" if tag else str(name)


def container_rows(items: list[dict[str, Any]], trunc: bool, rw_size_only: bool = False) -> list[Record]:
    """ps rows; `rw_size_only` for system df -v, whose SIZE is the writable layer alone."""
    now = time.time()
    return [_container_record(c, trunc, now, rw_size_only) for c in items]


def _container_record(c: dict[str, Any], trunc: bool, now: float, rw_size_only: bool = False) -> Record:
    cid = str(c.get("Id") or "")
    created = int(c.get("Created") or 0)
    names = [str(n)[1:] if str(n).startswith("/") else str(n) for n in c.get("Names") or []]
    labels = c.get("Labels") or {}
    mounts = c.get("Mounts") or []

    def names_column() -> str:
        if not trunc:
            return ",".join(names)
        for n in names:
            if "/" not in n:
                return n
        return ",".join(names)

    def command() -> str:
        text = str(c.get("Command") or "")
        return go_quote(ellipsis(text, 20) if trunc else text)

    def size() -> str:
        rw = human_size(int(c.get("SizeRw") or 0), 3)
        root = int(c.get("SizeRootFs") or 0)
        return f"{rw} (virtual {human_size(root, 3)})" if root > 0 and not rw_size_only else rw

    def mount_names() -> str:
        out = []
        for m in mounts:
            name = str(m.get("Name") or m.get("Source") or "")
            out.append(ellipsis(name, 15) if trunc else name)
        return ",".join(out)

    def networks() -> str:
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))

    def platform() -> Any:
        desc = c.get("ImageManifestDescriptor")
        plat = desc.get("platform") if isinstance(desc, dict) else None
        return plat if isinstance(plat, dict) and plat else GoNil("ptr")   # docker's *Platform, nil when unknown

    return Record("*formatter.ContainerContext", {
        "ID": lambda: truncate_id(cid) if trunc else cid,
        "Names": names_column,
        "Image": lambda: _image_column(c, trunc),
        "Command": command,
        "CreatedAt": lambda: go_time_string(created),
        "RunningFor": lambda: human_duration(max(0.0, now - created)) + " ago",
        "Ports": lambda: displayable_ports(list(c.get("Ports") or [])),
        "State": lambda: str(c.get("State") or ""),
        "Status": lambda: str(c.get("Status") or ""),
        "Size": size,
        "Labels": lambda: ",".join(f"{k}={v}" for k, v in labels.items()),
        "Label": lambda: Method(lambda name: str(labels.get(name, ""))),
        "Mounts": mount_names,
        "LocalVolumes": lambda: str(sum(1 for m in mounts if m.get("Driver") == "local")),
        "Networks": networks,
        "Platform": platform,
    })


def run_ps(ctx: Ctx, a: argparse.Namespace) -> int:
    fmt = a.format
    if fmt and a.quiet:
        ctx.err.write("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
        fmt = ""
    # docker asks for sizes when the template reads .Size, which `{{json .}}` does (the "json" shorthand is
    # checked as a literal template, so it does not)
    size = a.size or (bool(fmt) and not a.quiet and (".Size" in fmt or
                                                     re.search(r"json\s+\.\s*}}", fmt) is not None))
    limit = 1 if a.latest and a.last == -1 else a.last
    query: dict[str, Any] = {   # as docker: a limit implies every state on the daemon's side
        "all": True if a.all else None, "limit": limit if limit > 0 else None,
        "size": True if size else None, "filters": parse_filters(a.filter) or None,
    }
    items = ctx.client.get_json("/containers/json", query) or []
    fmt = ps_format(fmt or "table", a.quiet, a.size)
    ctx.out.write(render_list(fmt, container_rows(items, not a.no_trunc), PS_HEADER))
    return 0


# ---- logs ----------------------------------------------------------------------------------------------------

_RELATIVE = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def timestamp_arg(value: str, now: float | None = None) -> str:
    """docker's timetypes.GetTimestamp: a Go duration means that long ago; RFC 3339 (or a date) becomes unix
    seconds; a plain number passes through."""
    import re

    from berth.cli.createopts import duration_ns

    if not value:
        return ""
    now = time.time() if now is None else now
    if re.fullmatch(r"-?(?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+", value):
        try:
            seconds = duration_ns(value) / 1e9
        except argparse.ArgumentTypeError:
            seconds = 0.0
        return f"{now - seconds:.9f}"
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    import datetime

    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"') from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return f"{parsed.timestamp():.9f}"


def run_logs(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.client.hijack import STDERR, FrameDecoder

    name = a.container[0]
    info = ctx.client.get_json(f"/containers/{path_segment(name)}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    query: dict[str, Any] = {
        "stdout": True, "stderr": True, "follow": True if a.follow else None,
        "since": timestamp_arg(a.since) or None, "until": timestamp_arg(a.until) or None,
        "timestamps": True if a.timestamps else None, "details": True if a.details else None,
        "tail": a.tail or "all",
    }
    resp = ctx.client.open("GET", f"/containers/{path_segment(name)}/logs", query)
    out = ctx.out_binary()
    ctx.err.flush()
    err: Any = getattr(ctx.err, "buffer", ctx.err)
    decoder = None if tty else FrameDecoder()
    try:
        for chunk in resp.chunks():
            if decoder is None:
                out.write(chunk)
                out.flush()
                continue
            for stream, payload in decoder.feed(chunk):
                target = err if stream == STDERR else out
                target.write(payload)
                target.flush()
    finally:
        resp.close()
    return 0


# ---- one call per container ------------------------------------------------------------------------------------

def _each(ctx: Ctx, names: list[str], call: Callable[[str], Any], echo: bool = True,
          ignore_missing: bool = False) -> int:
    """Run `call` for every name; print the name on success (docker echoes what the user typed), collect the
    errors and print them after, exiting 1 when any failed."""
    errors: list[str] = []
    failed = False
    for name in names:
        try:
            call(name)
        except BerthError as exc:
            errors.append(daemon_message(exc))
            failed = failed or not (ignore_missing and isinstance(exc, NotFound))  # rm -f: said, not failed
            continue
        if echo:
            ctx.out.write(name + "\n")
            ctx.out.flush()
    if errors:
        ctx.err.write("\n".join(errors) + "\n")
    return 1 if failed else 0


def run_stop(ctx: Ctx, a: argparse.Namespace) -> int:
    query = {"t": a.timeout, "signal": a.signal or None}
    return _each(ctx, a.containers, lambda n: ctx.client.call("POST", f"/containers/{path_segment(n)}/stop", query))


def run_restart(ctx: Ctx, a: argparse.Namespace) -> int:
    query = {"t": a.timeout, "signal": a.signal or None}
    return _each(ctx, a.containers,
                 lambda n: ctx.client.call("POST", f"/containers/{path_segment(n)}/restart", query))


def run_kill(ctx: Ctx, a: argparse.Namespace) -> int:
    query = {"signal": a.signal or None}
    return _each(ctx, a.containers, lambda n: ctx.client.call("POST", f"/containers/{path_segment(n)}/kill", query))


def run_rm(ctx: Ctx, a: argparse.Namespace) -> int:
    query = {"force": True if a.force else None, "v": True if a.volumes else None, "link": True if a.link else None}
    return _each(ctx, a.containers, lambda n: ctx.client.call("DELETE", f"/containers/{path_segment(n)}", query),
                 ignore_missing=a.force)


def run_pause(ctx: Ctx, a: argparse.Namespace) -> int:
    return _each(ctx, a.containers, lambda n: ctx.client.call("POST", f"/containers/{path_segment(n)}/pause"))


def run_unpause(ctx: Ctx, a: argparse.Namespace) -> int:
    return _each(ctx, a.containers, lambda n: ctx.client.call("POST", f"/containers/{path_segment(n)}/unpause"))


def run_rename(ctx: Ctx, a: argparse.Namespace) -> int:
    old, new = a.names
    new = new.strip().removeprefix("/")
    if not new:
        raise InvalidArgument("Error: Neither old nor new names may be empty")
    ctx.client.call("POST", f"/containers/{path_segment(old)}/rename", {"name": new})
    return 0


def run_wait(ctx: Ctx, a: argparse.Namespace) -> int:
    def wait(name: str) -> None:
        result = ctx.client.post_json(f"/containers/{path_segment(name)}/wait") or {}
        error = result.get("Error")
        if isinstance(error, dict) and error.get("Message"):
            raise BerthError(str(error["Message"]))
        ctx.out.write(f"{result.get('StatusCode', 0)}\n")
        ctx.out.flush()

    return _each(ctx, a.containers, wait, echo=False)


def run_update(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.cli.createopts import CreateFlagError, parse_restart

    body: dict[str, Any] = {}
    for flag, key in (("blkio_weight", "BlkioWeight"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"),
                      ("cpu_shares", "CpuShares"), ("cpus", "NanoCpus"), ("cpuset_cpus", "CpusetCpus"),
                      ("cpuset_mems", "CpusetMems"), ("memory", "Memory"),
                      ("memory_reservation", "MemoryReservation"), ("memory_swap", "MemorySwap"),
                      ("pids_limit", "PidsLimit")):
        value = getattr(a, flag)
        if value is not None:
            body[key] = value
    if a.restart is not None:
        try:
            body["RestartPolicy"] = parse_restart(a.restart)
        except CreateFlagError as exc:
            raise UsageError(str(exc)) from exc
    if not body:
        raise UsageError("you must provide one or more flags when using this command", exit_code=1)
    warnings: list[str] = []

    def update(name: str) -> None:
        result = ctx.client.post_json(f"/containers/{path_segment(name)}/update", json_body=body) or {}
        warnings.extend(result.get("Warnings") or [])

    code = _each(ctx, a.containers, update)
    for w in warnings:
        ctx.err.write(f"{w}\n")
    return code


# ---- top / diff / export / commit / port ---------------------------------------------------------------------------

def run_top(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.cli.tabwriter import align

    name, ps_args = a.argv[0], a.argv[1:]
    query = {"ps_args": " ".join(ps_args)} if ps_args else None
    result = ctx.client.get_json(f"/containers/{path_segment(name)}/top", query) or {}
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(str(x) for x in row) for row in result.get("Processes") or []]
    ctx.out.write(align("\n".join(lines) + "\n", minwidth=20, padding=3))
    return 0


_KINDS = {0: "C", 1: "A", 2: "D"}


def run_diff(ctx: Ctx, a: argparse.Namespace) -> int:
    changes = ctx.client.get_json(f"/containers/{path_segment(a.container[0])}/changes") or []
    for change in changes:
        ctx.out.write(f"{_KINDS.get(int(change.get('Kind', 0)), '?')} {change.get('Path', '')}\n")
    return 0


def run_export(ctx: Ctx, a: argparse.Namespace) -> int:
    path = f"/containers/{path_segment(a.container[0])}/export"
    if not a.output:
        if ctx.out_is_terminal():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        out = ctx.out_binary()
        ctx.client.download(path, None, out)
        out.flush()
        return 0
    import os
    import tempfile

    target = os.path.abspath(a.output)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(target)}", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            ctx.client.download(path, None, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def run_commit(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.cli.refs import parse_normalized

    container = a.args[0]
    query: dict[str, Any] = {"container": container, "comment": a.message, "author": a.author,
                             "pause": a.pause, "changes": tuple(a.change) if a.change else None}
    if len(a.args) > 1:
        ref = parse_normalized(a.args[1])
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        query["repo"] = ref.name
        query["tag"] = ref.tag or ""
    result = ctx.client.post_json("/commit", query) or {}
    ctx.out.write(f"{result.get('Id', '')}\n")
    return 0


def run_port(ctx: Ctx, a: argparse.Namespace) -> int:
    name = a.args[0]
    info = ctx.client.get_json(f"/containers/{path_segment(name)}/json")
    ports = ((info.get("NetworkSettings") or {}).get("Ports") or {})
    if len(a.args) > 1:
        port, _, proto = a.args[1].partition("/")
        if not port.isdigit():
            raise InvalidArgument(f'Error: invalid port ({port}): strconv.ParseUint: parsing "{port}": invalid syntax')
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise InvalidArgument(f"Error: No public port '{key}' published for {name}")
        lines = [join_host_port(str(b.get("HostIp") or ""), str(b.get("HostPort") or "")) for b in bindings]
    else:
        lines = [f"{k} -> {join_host_port(str(b.get('HostIp') or ''), str(b.get('HostPort') or ''))}"
                 for k, bindings in ports.items() for b in bindings or []]
        lines.sort(key=_natural)
    ctx.out.write("".join(line + "\n" for line in lines))
    return 0


def _natural(text: str) -> list[Any]:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ---- prune / inspect -----------------------------------------------------------------------------------------------

def confirm(ctx: Ctx, warning: str) -> bool:
    ctx.out.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = ctx.stdin.readline().decode(errors="replace").strip().lower()
    return answer in ("y", "yes")


def run_prune(ctx: Ctx, a: argparse.Namespace) -> int:
    if not a.force and not confirm(ctx, "WARNING! This will remove all stopped containers."):
        ctx.err.write("container prune has been cancelled\n")
        return 0
    report = ctx.client.post_json("/containers/prune", {"filters": parse_filters(a.filter) or None}) or {}
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        ctx.out.write("Deleted Containers:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    ctx.out.write(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}\n")
    return 0


def run_container_inspect(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.cli.images import run_inspect

    a.type = "container"
    return run_inspect(ctx, a)
