"""`berth system df` and `berth system prune`, as docker shows them.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse

from berth.cli.containers import parse_filters
from berth.cli.context import Ctx
from berth.cli.formatter import render_list
from berth.cli.gotemplate import Record
from berth.cli.units import human_size
from berth.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADER = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}


def _with_percent(reclaimable: int, total: int) -> str:
    if total > 0:
        return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable)


def _row(kind: str, total: int, active: int, size: int, reclaimable: str) -> Record:
    return Record("*formatter.diskUsageContext", {
        "Type": lambda: kind, "TotalCount": lambda: str(total), "Active": lambda: str(active),
        "Size": lambda: human_size(size), "Reclaimable": lambda: reclaimable,
    })


def df_rows(du: dict[str, Any]) -> list[Record]:
    images = du.get("Images") or []
    layers = int(du.get("LayersSize") or 0)
    used = sum(int(i.get("Size") or 0) - int(i.get("SharedSize") or 0) for i in images
               if int(i.get("Containers") or 0) != 0 and i.get("Size", 0) != -1 and i.get("SharedSize", 0) != -1)
    rows = [_row("Images", len(images), sum(1 for i in images if int(i.get("Containers") or 0) > 0), layers,
                 _with_percent(layers - used, layers))]
    containers = du.get("Containers") or []

    def active(c: dict[str, Any]) -> bool:
        state = str(c.get("State") or "")
        return any(s in state for s in ("running", "paused", "restarting"))

    c_size = sum(int(c.get("SizeRw") or 0) for c in containers)
    c_free = sum(int(c.get("SizeRw") or 0) for c in containers if not active(c))
    rows.append(_row("Containers", len(containers), sum(1 for c in containers if active(c)), c_size,
                     _with_percent(c_free, c_size)))
    volumes = du.get("Volumes") or []

    def usage(v: dict[str, Any]) -> tuple[int, int]:
        data = v.get("UsageData") or {}
        size = int(data.get("Size") or 0)
        return max(size, 0), int(data.get("RefCount") or 0)

    v_size = sum(usage(v)[0] for v in volumes)
    v_free = sum(usage(v)[0] for v in volumes if usage(v)[1] == 0)
    rows.append(_row("Local Volumes", len(volumes), sum(1 for v in volumes if usage(v)[1] > 0), v_size,
                     _with_percent(v_free, v_size)))
    cache = du.get("BuildCache") or []
    b_size = sum(int(b.get("Size") or 0) for b in cache if not b.get("Shared"))
    b_free = sum(int(b.get("Size") or 0) for b in cache if not b.get("InUse") and not b.get("Shared"))
    rows.append(_row("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), b_size,
                     _with_percent(b_free, b_size)))
    return rows


DF_IMAGES = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t"
             "{{.UniqueSize}}\t{{.Containers}}")
DF_CONTAINERS = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t"
                 "{{.Status}}\t{{.Names}}")
DF_VOLUMES = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
DF_CACHE = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t"
            "{{.Shared}}")
CACHE_HEADER = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
                "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}


def _cache_rows(cache: list[dict[str, Any]]) -> list[Record]:
    import time

    now = time.time()
    return [_cache_record(b, now) for b in cache]


def _cache_record(b: dict[str, Any], now: float) -> Record:
    from berth.cli.units import since, truncate_id
    from berth.oci.config import rfc3339_to_unix

    def ago(key: str) -> str:
        return since(rfc3339_to_unix(str(b[key])), now) if b.get(key) else ""

    return Record("*formatter.buildCacheContext", {
        "ID": lambda: truncate_id(str(b.get("ID") or "")),
        "CacheType": lambda: str(b.get("Type") or ""),
        "Size": lambda: human_size(int(b.get("Size") or 0), 3),
        "CreatedSince": lambda: ago("CreatedAt"),
        "LastUsedSince": lambda: ago("LastUsedAt"),
        "UsageCount": lambda: str(b.get("UsageCount") or 0),
        "Shared": lambda: "true" if b.get("Shared") else "false",
    })


def df_verbose(du: dict[str, Any]) -> str:
    """`system df -v`: a table per kind under docker's section titles."""
    from berth.cli.containers import PS_HEADER, container_rows
    from berth.cli.images import IMAGE_HEADER, image_rows
    from berth.cli.volumes import VOLUME_HEADER, volume_rows

    cache = du.get("BuildCache") or []
    cache_size = sum(int(b.get("Size") or 0) for b in cache if not b.get("Shared"))
    header = {**IMAGE_HEADER, "Size": "SIZE"}
    return ("Images space usage:\n\n" +
            render_list(DF_IMAGES, image_rows(du.get("Images") or [], True, False, DF_IMAGES), header) +
            "\nContainers space usage:\n\n" +
            render_list(DF_CONTAINERS, container_rows(du.get("Containers") or [], True, rw_size_only=True),
                        PS_HEADER) +
            "\nLocal Volumes space usage:\n\n" +
            render_list(DF_VOLUMES, volume_rows(du.get("Volumes") or []), VOLUME_HEADER) +
            f"\nBuild cache usage: {human_size(cache_size)}\n\n" +
            render_list(DF_CACHE, _cache_rows(cache), CACHE_HEADER))


def run_df(ctx: Ctx, a: argparse.Namespace) -> int:
    du = ctx.client.get_json("/system/df") or {}
    if a.verbose and a.format in ("", "table"):
        ctx.out.write(df_verbose(du))
        return 0
    fmt = DF_TABLE if a.format in ("", "table") else a.format
    ctx.out.write(render_list(fmt, df_rows(du), DF_HEADER))
    return 0


def run_system_prune(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.cli.containers import confirm

    items = ["all stopped containers", "all networks not used by at least one container"]
    if a.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items += ["all images without at least one container associated to them" if a.all else "all dangling images",
              "all build cache" if a.all else "unused build cache"]
    warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
    if not a.force and not confirm(ctx, warning):
        ctx.err.write("system prune has been cancelled\n")
        return 0
    filters = parse_filters(a.filter)
    total = 0
    sections: list[tuple[str, str, str]] = [
        ("/containers/prune", "ContainersDeleted", "Deleted Containers:"),
        ("/networks/prune", "NetworksDeleted", "Deleted Networks:"),
    ]
    if a.volumes:
        sections.append(("/volumes/prune", "VolumesDeleted", "Deleted Volumes:"))
    for path, key, title in sections:
        report = ctx.client.post_json(path, {"filters": filters or None}) or {}
        deleted = report.get(key) or []
        if deleted:
            ctx.out.write(title + "\n" + "".join(f"{d}\n" for d in deleted) + "\n")
        total += int(report.get("SpaceReclaimed") or 0)
    image_filters = {**filters, "dangling": {"false" if a.all else "true": True}}
    report = ctx.client.post_json("/images/prune", {"filters": image_filters}) or {}
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        lines = [f"untagged: {d['Untagged']}" if d.get("Untagged") else f"deleted: {d.get('Deleted')}"
                 for d in deleted]
        ctx.out.write("Deleted Images:\n" + "".join(f"{x}\n" for x in lines) + "\n")
    total += int(report.get("SpaceReclaimed") or 0)
    try:
        report = ctx.client.post_json("/build/prune", {"all": True if a.all else None}) or {}
    except NotFound:
        report = {}   # a daemon without a build cache
    cached = report.get("CachesDeleted") or []
    if cached:
        ctx.out.write("Deleted build cache objects:\n" + "".join(f"{d}\n" for d in cached) + "\n")
    total += int(report.get("SpaceReclaimed") or 0)
    ctx.out.write(f"Total reclaimed space: {human_size(total)}\n")
    return 0
