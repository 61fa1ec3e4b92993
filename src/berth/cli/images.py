"""Image commands: images/ls, inspect, history, tag, rmi, save, load, import, prune, bootstrap.

Each `run_*` takes the parsed arguments and a Ctx, talks to the daemon through the Engine API, and prints what
the docker CLI prints for the same answer. Rows for `--format` are gotemplate Records with docker's field names.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from berth.cli.context import Ctx, UsageError
from berth.cli.formatter import display_stream, inspect_output, render_list
from berth.cli.gotemplate import Record
from berth.cli.refs import parse_normalized, try_familiar
from berth.cli.units import ellipsis, go_time_string, human_size, rfc3339, since, truncate_id
from berth.client.transport import file_chunks, from_daemon, path_segment
from berth.errors import BerthError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:  # only mypy reads typing; importing it costs the CLI ~8 ms
    from typing import Any

# ---- images / image ls ---------------------------------------------------------------------------------------

IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
IMAGE_TABLE_DIGEST = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                      "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
IMAGE_HEADER = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}


def parse_filters(items: Iterable[str]) -> dict[str, dict[str, bool]]:
    """`--filter k=v` flags as the Engine API's filters JSON: {"k": {"v": true}}."""
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter '
                             "(expected name=value)", usage=True)
        out.setdefault(key.strip().lower(), {})[value] = True
    return out


def image_format(source: str, quiet: bool, digests: bool) -> str:
    if source == "table":
        if quiet:
            return "{{.ID}}"
        return IMAGE_TABLE_DIGEST if digests else IMAGE_TABLE
    if source == "raw":
        if quiet:
            return "image_id: {{.ID}}"
        digest_line = "digest: {{.Digest}}\n" if digests else ""
        return ("repository: {{ .Repository }}\ntag: {{.Tag}}\n" + digest_line +
                "image_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
    if source.startswith("table") and digests and "{{.Digest}}" not in source:
        return source + "\t{{.Digest}}"
    return source


def _is_dangling(img: dict[str, Any]) -> bool:
    tags, digests = img.get("RepoTags") or [], img.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def image_rows(images: list[dict[str, Any]], trunc: bool, digests: bool, fmt: str) -> list[Record]:
    need_digest = digests or "{{.Digest}}" in fmt
    now = time.time()
    rows: list[Record] = []
    for img in images:
        if _is_dangling(img):
            rows.append(_image_record(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            parsed = try_familiar(ref)
            if parsed and parsed[1]:
                repo_tags.setdefault(parsed[0], []).append(parsed[1])
        for ref in img.get("RepoDigests") or []:
            parsed = try_familiar(ref)
            if parsed and parsed[2]:
                repo_digests.setdefault(parsed[0], []).append(parsed[2])
        for repo, tags in repo_tags.items():
            dgs = repo_digests.pop(repo, [])
            if not need_digest:
                dgs = []
            for tag in tags:
                if not dgs:
                    rows.append(_image_record(img, repo, tag, "<none>", trunc, now))
                for d in dgs:
                    rows.append(_image_record(img, repo, tag, d, trunc, now))
        for repo, dgs in repo_digests.items():
            if digests:
                rows.extend(_image_record(img, repo, "<none>", d, trunc, now) for d in dgs)
            else:
                rows.append(_image_record(img, repo, "<none>", "", trunc, now))
    return rows


def _image_record(img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool, now: float) -> Record:
    image_id = str(img.get("Id", ""))
    created = int(img.get("Created") or 0)
    size = int(img.get("Size") or 0)
    shared = _int_or(img.get("SharedSize"), -1)
    containers = _int_or(img.get("Containers"), -1)
    return Record("*formatter.imageContext", {
        "ID": lambda: truncate_id(image_id) if trunc else image_id,
        "Repository": lambda: repo,
        "Tag": lambda: tag,
        "Digest": lambda: digest,
        "CreatedSince": lambda: since(created, now),
        "CreatedAt": lambda: go_time_string(created),
        "Size": lambda: human_size(size, 3),
        "Containers": lambda: "N/A" if containers == -1 else str(containers),
        "VirtualSize": lambda: human_size(size),
        "SharedSize": lambda: "N/A" if shared == -1 else human_size(shared),
        "UniqueSize": lambda: "N/A" if size == -1 or shared == -1 else human_size(size - shared),
    })


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


_AMBIGUOUS = {"build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push", "rm",
              "save", "tag"}


def run_images(ctx: Ctx, a: argparse.Namespace) -> int:
    if len(a.repository) > 1:
        raise UsageError(f"'berth {a.called_as}' requires at most 1 argument", exit_code=1)
    filters = parse_filters(a.filter)
    match = a.repository[0] if a.repository else ""
    if match:
        filters.setdefault("reference", {})[match] = True
    query: dict[str, Any] = {"all": True if a.all else None, "filters": filters or None}
    images = ctx.client.get_json("/images/json", query) or []
    fmt = image_format(a.format or "table", a.quiet, a.digests)
    rows = image_rows(images, not a.no_trunc, a.digests, fmt)
    ctx.out.write(render_list(fmt, rows, IMAGE_HEADER))
    if match and not images and a.called_as == "images" and match in _AMBIGUOUS:
        ctx.err.write(f'\nNo images found matching "{match}": did you mean "berth image {match}"?\n')
    return 0


# ---- inspect -------------------------------------------------------------------------------------------------

def daemon_message(err: BaseException) -> str:
    """How docker prints an error the daemon sent: 'Error response from daemon: ...'."""
    status = from_daemon(err)
    if status is not None:
        return f"Error response from daemon: {status.message}"
    return str(err)


def run_image_inspect(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.cli.gotypes import image_inspect_value

    raws: list[str] = []
    typed: list[Any] = []
    errors: list[str] = []
    for ref in a.names:
        try:
            raw = ctx.client.call("GET", f"/images/{path_segment(ref)}/json").decode()
        except NotFound as exc:
            errors.append(daemon_message(exc))
            continue
        raws.append(raw)
        typed.append(image_inspect_value(json.loads(raw)))
    text, template_errors = inspect_output(raws, a.format or "", typed)
    ctx.out.write(text)
    errors += template_errors
    if errors:
        ctx.err.write("\n".join(errors) + "\n")
        return 1
    return 0


def run_inspect(ctx: Ctx, a: argparse.Namespace) -> int:
    """`berth inspect`: a container if one has the name, else an image (docker's order), or --type."""
    from berth.cli.gotypes import JsonStruct, image_inspect_value

    kinds = [a.type] if a.type else ["container", "image", "network", "volume"]   # docker's lookup order
    paths = {"container": "/containers/{}/json", "image": "/images/{}/json", "network": "/networks/{}",
             "volume": "/volumes/{}"}
    raws: list[str] = []
    typed: list[Any] = []
    errors: list[str] = []
    for ref in a.names:
        for kind in kinds:
            path = paths[kind].format(path_segment(ref))
            query = {"size": True} if kind == "container" and getattr(a, "size", False) else None
            try:
                raw = ctx.client.call("GET", path, query).decode()
            except NotFound as exc:
                if a.type:  # one type asked for: docker passes the daemon's answer through
                    errors.append(daemon_message(exc))
                    break
                continue
            raws.append(raw)
            data = json.loads(raw)
            typed.append(image_inspect_value(data) if kind == "image" else
                         JsonStruct(data, {"container": "container.InspectResponse", "network": "network.Inspect",
                                           "volume": "volume.Volume"}[kind]))
            break
        else:
            errors.append(f"Error: No such object: {ref}")
    text, template_errors = inspect_output(raws, a.format or "", typed)
    ctx.out.write(text)
    errors += template_errors
    if errors:
        ctx.err.write("\n".join(errors) + "\n")
        return 1
    return 0


# ---- history -------------------------------------------------------------------------------------------------

HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_RAW = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADER = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                  "Size": "SIZE", "Comment": "COMMENT"}
_EPOCH_2000 = 946684800


def history_rows(items: list[dict[str, Any]], trunc: bool, human: bool) -> list[Record]:
    now = time.time()
    rows = []
    for h in items:
        hid = str(h.get("Id", ""))
        created = int(h.get("Created") or 0)
        created_by = str(h.get("CreatedBy") or "").replace("\t", " ")
        size = int(h.get("Size") or 0)
        comment = str(h.get("Comment") or "")
        rows.append(_history_record(hid, created, created_by, size, comment, trunc, human, now))
    return rows


def _history_record(hid: str, created: int, created_by: str, size: int, comment: str, trunc: bool, human: bool,
                    now: float) -> Record:
    def created_since() -> str:
        if not human:
            return rfc3339(created)
        return "N/A" if created <= _EPOCH_2000 else since(created, now)

    return Record("*image.historyContext", {
        "ID": lambda: truncate_id(hid) if trunc else hid,
        "CreatedAt": lambda: rfc3339(created),
        "CreatedSince": created_since,
        "CreatedBy": lambda: ellipsis(created_by, 45) if trunc else created_by,
        "Size": lambda: human_size(size, 3) if human else str(size),
        "Comment": lambda: comment,
    })


def run_history(ctx: Ctx, a: argparse.Namespace) -> int:
    items = ctx.client.get_json(f"/images/{path_segment(a.image)}/history") or []
    fmt = a.format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if a.quiet else (HISTORY_TABLE if a.human else HISTORY_TABLE_RAW)
    ctx.out.write(render_list(fmt, history_rows(items, not a.no_trunc, a.human), HISTORY_HEADER))
    return 0


# ---- tag / rmi -----------------------------------------------------------------------------------------------

def run_tag(ctx: Ctx, a: argparse.Namespace) -> int:
    try:
        target = parse_normalized(a.target)
    except InvalidArgument as exc:
        raise InvalidArgument(f'Error parsing reference: "{a.target}" is not a valid repository/tag: {exc}') from exc
    if target.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    query = {"repo": target.name, "tag": target.tag or "latest"}
    ctx.client.call("POST", f"/images/{path_segment(a.source)}/tag", query)
    return 0


def run_rmi(ctx: Ctx, a: argparse.Namespace) -> int:
    errors: list[str] = []
    fatal = False
    for name in a.images:
        query = {"force": True if a.force else None, "noprune": True if a.no_prune else None}
        try:
            deleted = ctx.client.delete_json(f"/images/{path_segment(name)}", query) or []
        except BerthError as exc:
            if not isinstance(exc, NotFound):
                fatal = True
            errors.append(daemon_message(exc))
            continue
        for item in deleted:
            if item.get("Deleted"):
                ctx.out.write(f"Deleted: {item['Deleted']}\n")
            else:
                ctx.out.write(f"Untagged: {item.get('Untagged', '')}\n")
    if errors:
        ctx.err.write("\n".join(errors) + "\n")
        if not a.force or fatal:
            return 1
    return 0


# ---- save / load / import ------------------------------------------------------------------------------------

def run_save(ctx: Ctx, a: argparse.Namespace) -> int:
    query = {"names": tuple(a.images)}
    if not a.output:
        if ctx.out_is_terminal():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        ctx.client.download("/images/get", query, ctx.out_binary())
        ctx.out_binary().flush()
        return 0
    import tempfile

    target = Path(os.path.abspath(a.output))
    check_output_path(a.output)
    # Write beside the target and rename: a failed save leaves no half tar (and no file at all), as docker.
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{target.name}", dir=target.parent)
    except OSError as exc:
        raise InvalidArgument(f"failed to save image: {exc.strerror}: {target}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            ctx.client.download("/images/get", query, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return 0


_REFUSED_KINDS = [
    (stat.S_ISDIR, "cannot write to a directory"), (stat.S_ISLNK, "cannot write to a symbolic link directly"),
    (stat.S_ISFIFO, "cannot write to a named pipe (FIFO)"), (stat.S_ISSOCK, "cannot write to a socket"),
    (stat.S_ISCHR, "cannot write to a character device file"), (stat.S_ISBLK, "cannot write to a block device file"),
]


def check_output_path(name: str) -> None:
    """docker's rules for `save -o`: the directory must exist; the target, if present, must be a plain file."""
    if not name:
        raise InvalidArgument("failed to save image: file name is empty")
    parent = os.path.dirname(name)
    if parent not in ("", ".", ".."):
        try:
            st = os.stat(parent)
        except OSError as exc:
            raise InvalidArgument(f"failed to save image: invalid output path: stat {parent}: "
                                  f"{(exc.strerror or '').lower()}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"failed to save image: invalid output path: stat {parent}: not a directory")
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidArgument(f"failed to save image: failed to stat output path: {exc.strerror}") from exc
    for test, message in _REFUSED_KINDS:
        if test(st.st_mode):
            raise InvalidArgument(f"failed to save image: {message}")
    if st.st_mode & stat.S_ISUID:
        raise InvalidArgument("failed to save image: cannot write to a setuid file")
    if st.st_mode & stat.S_ISGID:
        raise InvalidArgument("failed to save image: cannot write to a setgid file")
    if st.st_mode & stat.S_ISVTX:
        raise InvalidArgument("failed to save image: cannot write to a sticky bit file")


def _open_input(path: str) -> Any:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise NotFound(f"open {path}: {(exc.strerror or '').lower()}") from exc


def run_load(ctx: Ctx, a: argparse.Namespace) -> int:
    if not a.input and ctx.stdin_is_terminal():
        raise InvalidArgument("requested load from stdin, but stdin is empty")
    source = _open_input(a.input) if a.input else ctx.stdin
    quiet = a.quiet or not ctx.out_is_terminal()
    try:
        messages = ctx.client.stream_json("POST", "/images/load", {"quiet": quiet},
                                          body=file_chunks(source))
        display_stream(messages, ctx.out)
    finally:
        if a.input:
            source.close()
    return 0


def run_import(ctx: Ctx, a: argparse.Namespace) -> int:
    query: dict[str, Any] = {"fromSrc": "-"}
    if a.reference:
        try:
            parse_normalized(a.reference)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{exc}") from exc
        query["repo"] = a.reference
    if a.message:
        query["message"] = a.message
    if a.change:
        query["changes"] = tuple(a.change)
    if a.platform:
        query["platform"] = a.platform
    if a.file in ("http://", "https://") or a.file.startswith(("http://", "https://")):
        query["fromSrc"] = a.file
        display_stream(ctx.client.stream_json("POST", "/images/create", query), ctx.out)
        return 0
    source = ctx.stdin if a.file == "-" else _open_input(a.file)
    try:
        # docker sends the tar as text/plain; berthd and dockerd do not look at the type
        display_stream(ctx.client.stream_json("POST", "/images/create", query, body=file_chunks(source),
                                              content_type="text/plain"), ctx.out)
    finally:
        if a.file != "-":
            source.close()
    return 0


# ---- prune / bootstrap ---------------------------------------------------------------------------------------

_PRUNE_DANGLING = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
_PRUNE_ALL = ("WARNING! This will remove all images without at least one container associated to them.\n"
              "Are you sure you want to continue?")


def run_prune(ctx: Ctx, a: argparse.Namespace) -> int:
    filters = parse_filters(a.filter)
    filters.setdefault("dangling", {})["false" if a.all else "true"] = True
    if not a.force:
        ctx.out.write((_PRUNE_ALL if a.all else _PRUNE_DANGLING) + " [y/N] ")
        ctx.out.flush()
        answer = ctx.stdin.readline().decode(errors="replace").strip().lower()
        if answer not in ("y", "yes"):
            ctx.err.write("image prune has been cancelled\n")
            return 0
    report = ctx.client.post_json("/images/prune", {"filters": filters}) or {}
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        lines = ["Deleted Images:"]
        for item in deleted:
            lines.append(f"untagged: {item['Untagged']}" if item.get("Untagged") else f"deleted: {item.get('Deleted')}")
        ctx.out.write("\n".join(lines) + "\n\n")
    reclaimed = int(report.get("SpaceReclaimed") or 0) if deleted else 0
    ctx.out.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


BOOTSTRAP_BASES = ("busybox", "debian:bookworm")


def run_bootstrap(ctx: Ctx, a: argparse.Namespace) -> int:
    """berth extension: build a base image on the daemon host from local packages (busybox-static, debootstrap)."""
    if a.base not in BOOTSTRAP_BASES:
        raise InvalidArgument(f"unknown bootstrap base {a.base!r}: choose one of {', '.join(BOOTSTRAP_BASES)}")
    tag = a.tag or ("busybox:latest" if a.base == "busybox" else a.base)
    try:
        parse_normalized(tag)
    except InvalidArgument as exc:
        raise InvalidArgument(f'invalid tag "{tag}": {exc}') from exc
    aux: list[Any] = []
    display_stream(ctx.client.stream_json("POST", "/berth/images/bootstrap", {"base": a.base, "tag": tag}),
                   ctx.out, aux)
    ids = [x["ID"] for x in aux if isinstance(x, dict) and x.get("ID")]
    if ids:
        ctx.out.write(f"{tag}: {ids[-1]}\n")
    return 0
