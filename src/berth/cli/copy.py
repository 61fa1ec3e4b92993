"""`berth cp`: files between a container and the local filesystem through the archive API, with docker's rules.

container → local: `GET /containers/{id}/archive?path=SRC` gives a tar whose top entry is SRC's base name, and the
path's stat in `X-Docker-Container-Path-Stat`; it is extracted into DEST when DEST is an existing directory, else
renamed to DEST's base name in DEST's parent (`SRC/.` copies a directory's contents). `-` as DEST writes the tar
to stdout. local → container: the same rules the other way, the tar streamed from a thread into
`PUT /containers/{id}/archive?path=DIR`; `-` as SRC sends stdin's tar as is. Extraction refuses entries that would
land outside the destination (tarfile's "tar" filter) and never follows a symlink out of it.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tarfile
import threading

from berth.cli.context import Ctx, UsageError
from berth.cli.units import human_size
from berth.client.transport import file_chunks, path_segment
from berth.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

_MODE_DIR = 1 << 31   # Go's os.ModeDir in the path stat's mode


def split_cp_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: `container:path`, unless the argument is an absolute or ./relative local path."""
    if os.path.isabs(arg):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def run_cp(ctx: Ctx, a: argparse.Namespace) -> int:
    src, dst = a.paths
    if not src:
        raise UsageError("source can not be empty", exit_code=1)
    if not dst:
        raise UsageError("destination can not be empty", exit_code=1)
    src_c, src_path = split_cp_arg(src)
    dst_c, dst_path = split_cp_arg(dst)
    if src_c and dst_c:
        raise UsageError("copying between containers is not supported", exit_code=1)
    if not src_c and not dst_c:
        raise UsageError("must specify at least one container source", exit_code=1)
    if src_c:
        as_name = None
        if a.follow_link:   # -L: copy what a symlink points to, under the link's name
            stat = _stat_in(ctx, src_c, src_path)
            if stat and stat.get("linkTarget"):
                as_name = os.path.basename(src_path.rstrip("/"))
                src_path = str(stat["linkTarget"])
        return _from_container(ctx, src_c, src_path, dst_path, a.quiet, as_name)
    if a.follow_link and src_path != "-":
        src_path = os.path.realpath(src_path)
    return _to_container(ctx, src_path, dst_c, dst_path, a.quiet, a.archive)


def path_stat(headers: Any) -> dict[str, Any]:
    raw = headers.get("x-docker-container-path-stat") or ""
    try:
        stat: dict[str, Any] = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        return {}
    return stat


class _Body:
    """A response's chunks as a read()-able stream for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf, self.total = chunks, b"", 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
            self.total += len(chunk)
        if size < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:size], self._buf[size:]
        return data


def _report(ctx: Ctx, quiet: bool, size: int, where: str) -> None:
    try:
        terminal = ctx.err.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if not quiet and terminal:   # docker says it only on a terminal
        ctx.err.write(f"Successfully copied {human_size(size)} to {where}\n")


def _from_container(ctx: Ctx, container: str, src: str, dst: str, quiet: bool, as_name: str | None = None) -> int:
    resp = ctx.client.open("GET", f"/containers/{path_segment(container)}/archive", {"path": src})
    try:
        if dst == "-":
            out = ctx.out_binary()
            for chunk in resp.chunks():
                out.write(chunk)
            out.flush()
            return 0
        stat = path_stat(resp.headers)
        src_is_dir = bool(int(stat.get("mode") or 0) & _MODE_DIR)
        top = str(stat.get("name") or os.path.basename(src.rstrip("/")) or "/")
        contents_only = src_is_dir and (src.endswith("/.") or src == ".")
        if os.path.isdir(dst):
            target_dir, rename = dst, ("" if contents_only else as_name)
        else:
            if os.path.lexists(dst):
                if src_is_dir:
                    raise InvalidArgument(f'cannot copy directory to a file: "{dst}" is not a directory')
            elif dst.endswith("/") and not src_is_dir:
                raise NotFound(f'destination "{dst}" does not exist')
            target_dir = os.path.dirname(dst.rstrip("/")) or "."
            if not os.path.isdir(target_dir):
                raise NotFound(f'destination directory "{target_dir}" does not exist')
            rename = os.path.basename(dst.rstrip("/"))
        body = _Body(resp.chunks())
        with tarfile.open(fileobj=body, mode="r|") as tar:   # type: ignore[call-overload]
            for member in tar:
                name = member.name.lstrip("/")
                if rename is not None and (name == top or name.startswith(top + "/")):
                    rest = name[len(top):].lstrip("/")
                    name = "/".join(x for x in (rename, rest) if x)
                    if not name:
                        continue   # the directory itself when copying its contents into an existing one
                member.name = name
                tar.extract(member, target_dir, filter="tar")
        _report(ctx, quiet, body.total, dst)
    finally:
        resp.close()
    return 0


def _stat_in(ctx: Ctx, container: str, path: str) -> dict[str, Any] | None:
    try:
        resp = ctx.client.open("HEAD", f"/containers/{path_segment(container)}/archive", {"path": path})
    except NotFound:
        return None
    resp.read()
    return path_stat(resp.headers)


def _tar_stream(src: str, arcname: str) -> tuple[Iterator[bytes], list[int], threading.Thread]:
    """The tar of `src` (its top renamed to `arcname`, "" for its contents) as chunks, written on a thread."""
    read_fd, write_fd = os.pipe()
    sizes = [0]
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|",
                                                                 format=tarfile.PAX_FORMAT) as tar:
                if arcname:
                    tar.add(src, arcname=arcname, recursive=True)
                else:
                    for entry in sorted(os.listdir(src)):
                        tar.add(os.path.join(src, entry), arcname=entry, recursive=True)
        except BaseException as exc:   # noqa: BLE001 - re-raised on the reading side
            failure.append(exc)

    thread = threading.Thread(target=write, name="tar", daemon=True)
    thread.start()

    def chunks() -> Iterator[bytes]:
        with os.fdopen(read_fd, "rb") as pipe:
            yield from file_chunks(pipe)
        thread.join()
        if failure:
            raise InvalidArgument(f"cannot read {src}: {failure[0]}") from failure[0]

    def counted() -> Iterator[bytes]:
        for chunk in chunks():
            sizes[0] += len(chunk)
            yield chunk

    return counted(), sizes, thread


def _to_container(ctx: Ctx, src: str, container: str, dst: str, quiet: bool, archive: bool = False) -> int:
    path = f"/containers/{path_segment(container)}/archive"
    headers = {"Content-Type": "application/x-tar"}
    if src == "-":
        stat = _stat_in(ctx, container, dst)
        if stat is None or not int(stat.get("mode") or 0) & _MODE_DIR:
            raise InvalidArgument(f'destination "{container}:{dst}" must be a directory')
        ctx.client.open("PUT", path, {"path": dst, "noOverwriteDirNonDir": True}, body=file_chunks(ctx.stdin),
                        headers=headers).read()
        return 0
    try:
        src_is_dir = os.path.isdir(src) and not os.path.islink(src)
        os.lstat(src)
    except OSError as exc:
        raise NotFound(f"lstat {src}: {(exc.strerror or '').lower()}") from exc
    contents_only = src_is_dir and (src.endswith("/.") or src == ".")
    stat = _stat_in(ctx, container, dst)
    dst_is_dir = stat is not None and bool(int(stat.get("mode") or 0) & _MODE_DIR)
    if dst_is_dir:
        target, arcname = dst, ("" if contents_only else os.path.basename(os.path.normpath(src)))
    else:
        if stat is not None and src_is_dir:
            raise InvalidArgument(f'cannot copy directory to a file: "{container}:{dst}" is not a directory')
        if stat is None and dst.endswith("/") and not src_is_dir:
            raise NotFound(f'destination "{container}:{dst}" does not exist')
        target = os.path.dirname(dst.rstrip("/")) or "/"
        arcname = os.path.basename(dst.rstrip("/"))
    body, sizes, _ = _tar_stream(os.path.normpath(src), arcname)
    query = {"path": target, "noOverwriteDirNonDir": True, "copyUIDGID": True if archive else None}
    ctx.client.open("PUT", path, query, body=body, headers=headers).read()
    _report(ctx, quiet, sizes[0], f"{container}:{dst}")
    return 0
