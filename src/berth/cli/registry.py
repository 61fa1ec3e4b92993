"""`berth pull`, `push`, `login`, `logout` (the same Engine API calls as docker's CLI, credentials in a Docker-
compatible config.json), and `berth registry ...`, which runs berth's registry server."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from berth.cli.context import Ctx, UsageError
from berth.cli.formatter import display_stream
from berth.cli.refs import parse_normalized
from berth.errors import InvalidArgument, NotFound, Unauthorized


def _auth_header(domain: str) -> dict[str, str]:
    from berth.distribution.credentials import CredentialStore
    return {"X-Registry-Auth": CredentialStore().get(domain).header()}


def _familiar(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def run_pull(ctx: Ctx, a: argparse.Namespace) -> int:
    ref = parse_normalized(a.image[0])
    query: dict[str, Any] = {"fromImage": _familiar(ref.name)}
    if not a.all_tags:
        query["tag"] = ref.digest or ref.tag or "latest"
    elif ref.tag or ref.digest:
        raise UsageError("tag can't be used with --all-tags/-a")
    if a.platform:
        query["platform"] = a.platform
    out = open(os.devnull, "w") if a.quiet else ctx.out   # noqa: SIM115 - closed below when it is ours
    try:
        display_stream(ctx.client.stream_json("POST", "/images/create", query, headers=_auth_header(ref.domain)),
                       out)
    finally:
        if a.quiet:
            out.close()
    shown = ref.name + (f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}" if not a.all_tags else "")
    ctx.out.write(shown + "\n")
    return 0


def run_push(ctx: Ctx, a: argparse.Namespace) -> int:
    ref = parse_normalized(a.image[0])
    query: dict[str, Any] = {"tag": ref.tag or "latest"} if not a.all_tags else {}
    if a.format:
        query["format"] = a.format
    out = open(os.devnull, "w") if a.quiet else ctx.out   # noqa: SIM115 - closed below when it is ours
    try:
        display_stream(ctx.client.stream_json("POST", f"/images/{_familiar(ref.name)}/push", query,
                                              headers=_auth_header(ref.domain)), out)
    finally:
        if a.quiet:
            out.close()
    return 0


def _server(arg: str | None) -> str:
    return arg or "docker.io"


def run_login(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.distribution.credentials import AuthConfig, CredentialStore
    server = _server(a.server[0] if a.server else None)
    username = a.username
    password = a.password
    if a.password_stdin:
        if password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        password = ctx.stdin.read().decode().rstrip("\r\n")
    if not username:
        sys.stderr.write("Username: ")
        username = input().strip()
    if not password:
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise InvalidArgument("Error: Username and password are required")
    if a.password and not a.password_stdin:
        ctx.err.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    try:
        answer = ctx.client.post_json("/auth", json_body={"username": username, "password": password,
                                                          "serveraddress": server})
    except (Unauthorized, NotFound) as exc:
        raise Unauthorized(f"login to {server} failed: {exc}") from exc
    token = str((answer or {}).get("IdentityToken") or "")
    CredentialStore().store(server, AuthConfig(username, "" if token else password, identity_token=token,
                                                server_address=server))
    ctx.out.write("Login Succeeded\n")
    return 0


def run_logout(ctx: Ctx, a: argparse.Namespace) -> int:
    from berth.distribution.credentials import CredentialStore
    server = _server(a.server[0] if a.server else None)
    try:
        CredentialStore().erase(server)
    except NotFound:
        ctx.out.write(f"Not logged in to {server}\n")
        return 0
    ctx.out.write(f"Removing login credentials for {server}\n")
    return 0


def run_registry(argv: list[str]) -> int:
    """`berth registry serve|gc ...`: the registry is its own program; run it in this process's place."""
    os.execv(sys.executable, [sys.executable, "-m", "berth.registry", *argv])
    return 127  # not reached
