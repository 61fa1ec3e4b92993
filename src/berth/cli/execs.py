"""`berth exec`: docker's flow — inspect, create the exec, start it on a hijacked connection (or detached), send
the tty size, relay, then read the exec's ExitCode, which becomes berth's.

May import: the standard library, berth.cli.*, berth.client, berth.errors.
"""

from __future__ import annotations

import argparse

from berth.cli.context import Ctx, UsageError
from berth.cli.createopts import CreateFlagError, env_list
from berth.cli.run import _relay_then_wait
from berth.cli.tty import window_size
from berth.client.hijack import hijack
from berth.client.transport import path_segment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run_exec(ctx: Ctx, a: argparse.Namespace) -> int:
    container, cmd = a.argv[0], a.argv[1:]
    if a.tty and a.interactive and not a.detach and not ctx.stdin_is_terminal():
        raise UsageError("the input device is not a TTY", exit_code=1)
    try:
        env = env_list(a.env_file, a.env, ctx.environ)
    except CreateFlagError as exc:
        raise UsageError(str(exc), exit_code=1) from exc
    ctx.client.get_json(f"/containers/{path_segment(container)}/json")   # docker's check: No such container
    console = window_size(ctx.out.fileno()) if a.tty and ctx.out_is_terminal() else None
    attach = not a.detach
    body: dict[str, Any] = {
        "User": a.user, "Privileged": a.privileged, "Tty": a.tty, "AttachStdin": attach and a.interactive,
        "AttachStderr": attach, "AttachStdout": attach, "Detach": a.detach, "DetachKeys": a.detach_keys,
        "Env": env or None, "WorkingDir": a.workdir, "Cmd": cmd,
    }
    if console:
        body["ConsoleSize"] = list(console)
    created = ctx.client.post_json(f"/containers/{path_segment(container)}/exec", json_body=body) or {}
    exec_id = str(created.get("Id") or "")
    if not exec_id:
        raise UsageError("exec ID empty", exit_code=1)
    start: dict[str, Any] = {"Detach": a.detach, "Tty": a.tty}
    if console:
        start["ConsoleSize"] = list(console)
    if a.detach:
        ctx.client.call("POST", f"/exec/{exec_id}/start", json_body=start)
        return 0
    conn = hijack(ctx.client, f"/exec/{exec_id}/start", json_body=start)
    # no sig-proxy for exec (docker has none); a detach ends berth with 0 and leaves the process running
    code = _relay_then_wait(ctx, ctx.client, container, conn, None, a.interactive, a.tty, False, a.detach_keys,
                            f"/exec/{exec_id}/resize", "")
    if code != 0:   # detached, or a signal while the terminal was raw
        return code
    info = ctx.client.get_json(f"/exec/{exec_id}/json") or {}
    return int(info.get("ExitCode") or 0)
