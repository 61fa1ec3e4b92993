"""Docker's JSON shapes for images (list items, inspect, history), rendered from berth's image views."""

from __future__ import annotations

import json
from typing import Any

from berth.images.service import HistoryRow, ImageView
from berth.oci.config import rfc3339_to_unix
from berth.oci.reference import Reference

ZERO_TIME = "0001-01-01T00:00:00Z"


def container_config(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's container.Config struct with every field present, as dockerd re-marshals it."""
    raw = raw or {}
    out: dict[str, Any] = {
        "Hostname": raw.get("Hostname", ""), "Domainname": raw.get("Domainname", ""), "User": raw.get("User", ""),
        "AttachStdin": raw.get("AttachStdin", False), "AttachStdout": raw.get("AttachStdout", False),
        "AttachStderr": raw.get("AttachStderr", False),
    }
    if raw.get("ExposedPorts"):
        out["ExposedPorts"] = raw["ExposedPorts"]
    out.update({"Tty": raw.get("Tty", False), "OpenStdin": raw.get("OpenStdin", False),
                "StdinOnce": raw.get("StdinOnce", False), "Env": raw.get("Env"), "Cmd": raw.get("Cmd")})
    if raw.get("Healthcheck"):
        out["Healthcheck"] = raw["Healthcheck"]
    if raw.get("ArgsEscaped"):
        out["ArgsEscaped"] = True
    out.update({"Image": raw.get("Image", ""), "Volumes": raw.get("Volumes"),
                "WorkingDir": raw.get("WorkingDir", ""), "Entrypoint": raw.get("Entrypoint")})
    if raw.get("NetworkDisabled"):
        out["NetworkDisabled"] = True
    if raw.get("MacAddress"):
        out["MacAddress"] = raw["MacAddress"]
    out.update({"OnBuild": raw.get("OnBuild"), "Labels": raw.get("Labels")})
    if raw.get("StopSignal"):
        out["StopSignal"] = raw["StopSignal"]
    if raw.get("StopTimeout") is not None:
        out["StopTimeout"] = raw["StopTimeout"]
    if raw.get("Shell"):
        out["Shell"] = raw["Shell"]
    return out


def _tags(view: ImageView) -> list[str]:
    return [Reference.parse(t).familiar for t in view.record.tags]


def _digests(view: ImageView) -> list[str]:
    return [Reference.parse(d).familiar for d in view.record.repo_digests]


def list_item(view: ImageView, version: tuple[int, int]) -> dict[str, Any]:
    tags, digests = _tags(view), _digests(view)
    if version < (1, 44):
        tags = tags or ["<none>:<none>"]
        digests = digests or ["<none>@<none>"]
    item: dict[str, Any] = {
        "Containers": -1, "Created": rfc3339_to_unix(view.config.created), "Id": str(view.record.id),
        "Labels": dict(view.config.config.labels) or None,
        "ParentId": str(view.record.parent) if view.record.parent else "",
        "RepoDigests": digests, "RepoTags": tags, "SharedSize": -1, "Size": view.size,
    }
    if version < (1, 44):
        item["VirtualSize"] = view.size
    return item


def inspect(view: ImageView, raw_config: bytes, graph_data: dict[str, str],
            version: tuple[int, int]) -> dict[str, Any]:
    raw = json.loads(raw_config)
    out: dict[str, Any] = {
        "Id": str(view.record.id), "RepoTags": _tags(view), "RepoDigests": _digests(view),
        "Parent": str(view.record.parent) if view.record.parent else "", "Comment": raw.get("comment", ""),
        "Created": raw.get("created", ""),
    }
    if version < (1, 45):
        out["Container"] = raw.get("container", "")
        out["ContainerConfig"] = container_config(raw.get("container_config"))
    out.update({"DockerVersion": raw.get("docker_version", ""), "Author": raw.get("author", ""),
                "Config": container_config(raw.get("config")), "Architecture": raw.get("architecture", "")})
    if raw.get("variant"):
        out["Variant"] = raw["variant"]
    out["Os"] = raw.get("os", "")
    if raw.get("os.version"):
        out["OsVersion"] = raw["os.version"]
    out["Size"] = view.size
    if version < (1, 44):
        out["VirtualSize"] = view.size
    out["GraphDriver"] = {"Data": graph_data or None, "Name": "overlay2"}
    out["RootFS"] = {"Type": "layers", "Layers": [str(d) for d in view.config.diff_ids]}
    out["Metadata"] = {"LastTagTime": ZERO_TIME}
    return out


def history(rows: list[HistoryRow]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        entry = row.entry
        out.append({"Comment": entry.comment, "Created": rfc3339_to_unix(entry.created), "CreatedBy": entry.created_by,
                    "Id": str(row.image_id) if row.image_id is not None else "<missing>", "Size": row.size,
                    "Tags": [Reference.parse(t).familiar for t in row.tags] or None})
    return out
