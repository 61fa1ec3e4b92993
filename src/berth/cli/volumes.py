"""`berth volume create|ls|inspect|rm|prune`, with docker's flags and output.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse

from berth.cli.containers import confirm, parse_filters
from berth.cli.context import Ctx, UsageError
from berth.cli.formatter import render_list
from berth.cli.gotemplate import Method, Record
from berth.cli.networks import _kv, _natural, inspect_objects, remove_each
from berth.cli.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADER = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                 "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
                 "Availability": "AVAILABILITY", "Status": "STATUS"}


def run_volume_create(ctx: Ctx, a: argparse.Namespace) -> int:
    if a.name and a.name_arg:
        raise UsageError("conflicting options: cannot specify a volume-name through both --name and as a "
                         "positional arg", exit_code=1)
    name = a.name or (a.name_arg[0] if a.name_arg else "")
    body = {"Driver": a.driver, "DriverOpts": _kv(a.opt, "-o, --opt"), "Labels": _kv(a.label, "--label"),
            "Name": name}
    created = ctx.client.post_json("/volumes/create", json_body=body) or {}
    ctx.out.write(f"{created.get('Name', '')}\n")
    return 0


def volume_rows(items: list[dict[str, Any]]) -> list[Record]:
    return [_volume_record(v) for v in sorted(items, key=lambda v: _natural(str(v.get("Name") or "")))]


def _volume_record(v: dict[str, Any]) -> Record:
    labels = v.get("Labels") or {}
    usage = v.get("UsageData")

    def links() -> str:
        return "N/A" if not isinstance(usage, dict) else str(usage.get("RefCount", 0))

    def size() -> str:
        return "N/A" if not isinstance(usage, dict) else human_size(int(usage.get("Size") or 0))

    cluster = v.get("ClusterVolume") or {}
    return Record("*formatter.volumeContext", {
        "Name": lambda: str(v.get("Name") or ""),
        "Driver": lambda: str(v.get("Driver") or ""),
        "Scope": lambda: str(v.get("Scope") or ""),
        "Mountpoint": lambda: str(v.get("Mountpoint") or ""),
        "Labels": lambda: ",".join(f"{k}={val}" for k, val in labels.items()),
        "Label": lambda: Method(lambda name: str(labels.get(name, ""))),
        "Links": links,
        "Size": size,
        # cluster volumes only; docker prints N/A for a local one
        "Group": lambda: str((cluster.get("Spec") or {}).get("Group") or "N/A") if cluster else "N/A",
        "Availability": lambda: str((cluster.get("Spec") or {}).get("Availability") or "N/A") if cluster
        else "N/A",
        "Status": lambda: "N/A",
    })


def run_volume_ls(ctx: Ctx, a: argparse.Namespace) -> int:
    fmt = a.format or "table"
    if fmt == "table":
        fmt = "{{.Name}}" if a.quiet else VOLUME_TABLE
    listing = ctx.client.get_json("/volumes", {"filters": parse_filters(a.filter) or None}) or {}
    ctx.out.write(render_list(fmt, volume_rows(listing.get("Volumes") or []), VOLUME_HEADER))
    for warning in listing.get("Warnings") or []:
        ctx.err.write(f"{warning}\n")
    return 0


def run_volume_inspect(ctx: Ctx, a: argparse.Namespace) -> int:
    return inspect_objects(ctx, a.names, "/volumes/{}", a.format, "volume.Volume")


def run_volume_rm(ctx: Ctx, a: argparse.Namespace) -> int:
    return remove_each(ctx, a.names, "/volumes/{}", {"force": True} if a.force else None, False)


def run_volume_prune(ctx: Ctx, a: argparse.Namespace) -> int:
    filters = parse_filters(a.filter)
    if a.all:
        version = tuple(int(x) for x in ctx.client.api_version.split("."))
        if version < (1, 42):
            raise UsageError(f'"--all" requires API version 1.42, but the Docker daemon API version is '
                             f"{ctx.client.api_version}", exit_code=1)
        filters.setdefault("all", {})["true"] = True
    warning = ("WARNING! This will remove all local volumes not used by at least one container." if a.all else
               "WARNING! This will remove anonymous local volumes not used by at least one container.")
    if not a.force and not confirm(ctx, warning):
        ctx.err.write("volume prune has been cancelled\n")
        return 0
    report = ctx.client.post_json("/volumes/prune", {"filters": filters or None}) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        ctx.out.write("Deleted Volumes:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    reclaimed = int(report.get("SpaceReclaimed") or 0) if deleted else 0
    ctx.out.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
