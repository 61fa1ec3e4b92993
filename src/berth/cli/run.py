"""`run`, `create`, `start` and `attach`: docker's client-side flow and exit codes.

run = create (404 "No such image" → "Unable to find image 'x' locally", pull, create again) → attach before start
→ wait registered before start (`condition=removed` with --rm, else `next-exit`) → start → tty size → relay → the
wait's StatusCode is the exit code. Failures map as docker's toStatusError: 127 when the command was not found,
126 when it cannot be invoked (permission denied, a directory), 125 for anything else the daemon refused.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse
import json
import os

from berth.cli.attachio import DETACHED, Streams, relay, signal_proxy, tty_size_sync
from berth.cli.context import Ctx, UsageError
from berth.cli.createopts import CreateFlagError, create_request
from berth.cli.tty import DEFAULT_DETACH_KEYS, Hangup, parse_detach_keys, window_size
from berth.client.hijack import hijack
from berth.client.transport import from_daemon, path_segment
from berth.errors import BerthError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.client.transport import EngineClient, Response


class StatusError(BerthError):
    """An error docker reports as `docker: <message>` + a help line, with a chosen exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _message(err: BaseException) -> str:
    status = from_daemon(err)
    return f"Error response from daemon: {status.message}" if status is not None else str(err)


def status_error(err: BaseException, command: str) -> StatusError:
    """docker's toStatusError: the exit code from the words of the error."""
    text = _message(err)
    if "executable file not found" in text or "no such file or directory" in text or \
            "system cannot find the file specified" in text:
        code = 127
    elif "permission denied" in text or "is a directory" in text:
        code = 126
    else:
        code = 125
    return StatusError(f"berth: {text}\n\nRun 'berth {command} --help' for more information", code)


# ---- create (with the pull on a missing image) -------------------------------------------------------------------

def _pull(ctx: Ctx, image: str, platform: str, quiet: bool) -> None:
    from berth.cli.formatter import display_stream
    from berth.cli.refs import parse_normalized
    from berth.cli.registry import _auth_header, _familiar

    ref = parse_normalized(image)
    query: dict[str, Any] = {"fromImage": _familiar(ref.name), "tag": ref.digest or ref.tag or "latest"}
    if platform:
        query["platform"] = platform
    stream = ctx.client.stream_json("POST", "/images/create", query, headers=_auth_header(ref.domain))
    if quiet:
        for _ in stream:
            pass
    else:
        display_stream(stream, ctx.err)


def _tagged(image: str) -> str:
    from berth.cli.refs import parse_normalized, try_familiar

    ref = parse_normalized(image)
    familiar = try_familiar(ref.name)
    name = familiar[0] if familiar else ref.name
    if ref.digest:
        return f"{name}@{ref.digest}"
    return f"{name}:{ref.tag or 'latest'}"


def create_container(ctx: Ctx, a: argparse.Namespace, body: dict[str, Any]) -> str:
    from berth.cli.refs import parse_normalized

    image = body["Image"]
    try:
        parse_normalized(image)
    except InvalidArgument as exc:
        raise StatusError(f"berth: {exc}\n\nRun 'berth {a.called_as} --help' for more information", 125) from exc
    if a.cidfile and os.path.exists(a.cidfile):
        raise StatusError(f"berth: container ID file found, make sure the other container isn't running or delete "
                          f"{a.cidfile}\n\nRun 'berth {a.called_as} --help' for more information", 125)
    query = {"name": a.name or None, "platform": a.platform or None}
    if a.pull == "always":
        _pull(ctx, image, a.platform, a.quiet)
    try:
        created = ctx.client.post_json("/containers/create", query, body)
    except NotFound as exc:
        if a.pull != "missing" or "No such image" not in _message(exc):
            raise
        ctx.err.write(f"Unable to find image '{_tagged(image)}' locally\n")
        ctx.err.flush()
        _pull(ctx, image, a.platform, a.quiet)
        created = ctx.client.post_json("/containers/create", query, body)
    for warning in created.get("Warnings") or []:
        ctx.err.write(f"WARNING: {warning}\n")
    cid = str(created["Id"])
    if a.cidfile:
        with open(a.cidfile, "w") as f:
            f.write(cid)
    return cid


def _console(ctx: Ctx, tty: bool) -> tuple[int, int] | None:
    if not tty or not ctx.out_is_terminal():
        return None
    return window_size(ctx.out.fileno())


def _request(ctx: Ctx, a: argparse.Namespace, detach: bool) -> dict[str, Any]:
    try:
        return create_request(a, ctx.environ, detach=detach, console=_console(ctx, a.tty))
    except CreateFlagError as exc:
        if exc.plain:
            raise StatusError(str(exc), 1) from exc
        raise StatusError(f"berth: {exc}\n\nRun 'berth {a.called_as} --help' for more information", 125) from exc


def run_create(ctx: Ctx, a: argparse.Namespace) -> int:
    body = _request(ctx, a, detach=False)
    cid = create_container(ctx, a, body)   # docker's create exits 1 on the daemon's errors, not 125
    ctx.out.write(cid + "\n")
    return 0


# ---- run ----------------------------------------------------------------------------------------------------------

def _detach_keys(text: str) -> bytes:
    if not text:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(text)
    except InvalidArgument:
        return DEFAULT_DETACH_KEYS   # docker warns and falls back to the default keys


def _open_wait(client: EngineClient, cid: str, condition: str) -> Response:
    """Register the wait before the start: the daemon sends headers at once, the body when the condition holds."""
    waiter = client.sibling()
    return waiter.open("POST", f"/containers/{cid}/wait", {"condition": condition or None})


def _wait_status(resp: Response) -> int:
    try:
        raw = resp.read()
    finally:
        resp.close()
    try:
        result = json.loads(raw or b"{}")
    except ValueError as exc:
        raise StatusError(f"berth: the daemon's wait answer is not JSON: {raw[:80]!r}", 125) from exc
    error = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
    if error:
        raise StatusError(f"Error waiting for container: {error}", 125)
    return int(result.get("StatusCode", 125))


def run_run(ctx: Ctx, a: argparse.Namespace) -> int:
    if a.tty and a.interactive and not a.detach and not ctx.stdin_is_terminal():
        raise UsageError("the input device is not a TTY", exit_code=1)
    body = _request(ctx, a, detach=a.detach)
    try:
        cid = create_container(ctx, a, body)
    except (StatusError, UsageError):
        raise
    except BerthError as exc:
        raise status_error(exc, "run") from exc
    if a.detach:
        try:
            ctx.client.call("POST", f"/containers/{cid}/start")
        except BerthError as exc:
            raise status_error(exc, "run") from exc
        ctx.out.write(cid + "\n")
        return 0
    return attach_and_start(ctx, cid, body["AttachStdin"], body["AttachStdout"] or body["AttachStderr"],
                            body["AttachStderr"], body["AttachStdout"], a.tty, a.rm, a.sig_proxy and not a.tty,
                            a.detach_keys, "run")


def attach_and_start(ctx: Ctx, cid: str, stdin: bool, any_output: bool, stderr: bool, stdout: bool, tty: bool,
                     auto_remove: bool, sig_proxy: bool, detach_keys: str, command: str) -> int:
    client = ctx.client
    conn = None
    if stdin or any_output:
        query: dict[str, Any] = {"stream": True, "stdin": stdin or None, "stdout": stdout or None,
                                 "stderr": stderr or None}
        if detach_keys:
            query["detachKeys"] = detach_keys
        conn = hijack(client, f"/containers/{cid}/attach", query)
    wait = _open_wait(client, cid, "removed" if auto_remove else "next-exit")
    try:
        try:
            client.call("POST", f"/containers/{cid}/start")
        except BerthError as exc:
            if conn is not None:
                conn.close()
            if auto_remove:
                with _suppressed():
                    _wait_status(wait)
            raise status_error(exc, command) from exc
        if conn is None:
            return _wait_status(wait)
        return _relay_then_wait(ctx, client, cid, conn, wait, stdin, tty, sig_proxy, detach_keys,
                                f"/containers/{cid}/resize", f"/containers/{cid}/kill")
    finally:
        wait.close()


def _relay_then_wait(ctx: Ctx, client: EngineClient, cid: str, conn: Any, wait: Response | None, stdin: bool,
                     tty: bool, sig_proxy: bool, detach_keys: str, resize_path: str, kill_path: str) -> int:
    import contextlib

    streams = Streams.of(ctx.stdin if stdin else None, ctx.out_binary(), _binary(ctx.err))
    resizer = client.sibling()

    def resize(rows: int, cols: int) -> None:
        resizer.call("POST", resize_path, {"h": rows, "w": cols})

    try:
        with contextlib.ExitStack() as stack:
            if tty and ctx.out_is_terminal():
                stack.enter_context(tty_size_sync(resize, streams.stdout))
            if sig_proxy:
                stack.enter_context(signal_proxy(client, kill_path))
            outcome = relay(conn, streams, tty, _detach_keys(detach_keys))
    except Hangup as exc:
        return 128 + exc.signum
    finally:
        conn.close()
        resizer.close()
    if outcome == DETACHED:
        return 0
    return _wait_status(wait) if wait is not None else 0


def _binary(stream: Any) -> Any:
    stream.flush()
    return getattr(stream, "buffer", stream)


class _suppressed:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, BerthError)


# ---- start / attach ---------------------------------------------------------------------------------------------

def _inspect(ctx: Ctx, ref: str) -> dict[str, Any]:
    data: dict[str, Any] = ctx.client.get_json(f"/containers/{path_segment(ref)}/json")
    return data


def run_start(ctx: Ctx, a: argparse.Namespace) -> int:
    if a.attach or a.interactive:
        if len(a.containers) > 1:
            raise UsageError("you cannot start and attach multiple containers at once", exit_code=1)
        info = _inspect(ctx, a.containers[0])
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        stdin = bool(a.interactive and config.get("OpenStdin"))
        if tty and stdin and not ctx.stdin_is_terminal():
            raise UsageError("the input device is not a TTY", exit_code=1)
        auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
        return attach_and_start(ctx, str(info["Id"]), stdin, True, True, True, tty, auto_remove, not tty,
                                a.detach_keys, "start")
    failed: list[str] = []
    for name in a.containers:
        try:
            ctx.client.call("POST", f"/containers/{path_segment(name)}/start")
        except BerthError as exc:
            ctx.err.write(_message(exc) + "\n")
            failed.append(name)
            continue
        ctx.out.write(name + "\n")
    if failed:
        ctx.err.write(f"Error: failed to start containers: {', '.join(failed)}\n")
        return 1
    return 0


def run_attach(ctx: Ctx, a: argparse.Namespace) -> int:
    info = _inspect(ctx, a.container[0])
    state = info.get("State") or {}
    if not state.get("Running"):
        raise InvalidArgument("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise InvalidArgument("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise InvalidArgument("You cannot attach to a restarting container, wait until it is running")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not a.no_stdin
    if tty and stdin and not ctx.stdin_is_terminal():
        raise UsageError("the input device is not a TTY", exit_code=1)
    cid = str(info["Id"])
    wait = _open_wait(ctx.client, cid, "")
    query: dict[str, Any] = {"stream": True, "stdin": stdin or None, "stdout": True, "stderr": True}
    if a.detach_keys:
        query["detachKeys"] = a.detach_keys
    conn = hijack(ctx.client, f"/containers/{cid}/attach", query)
    try:
        return _relay_then_wait(ctx, ctx.client, cid, conn, wait, stdin, tty, a.sig_proxy and not tty,
                                a.detach_keys, f"/containers/{cid}/resize", f"/containers/{cid}/kill")
    finally:
        wait.close()
