"""`python -m berth.registry serve|gc`: the registry as a separate app (the berth CLI dispatches
`berth registry ...` to main()).

May import: berth.content, berth.oci, berth.util, berth.errors, aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from berth.errors import BerthError
from berth.registry.app import Registry
from berth.registry.auth import Acl, Authorizer, BasicAuth, Htpasswd, OpenAccess, TokenAuth
from berth.registry.gc import collect
from berth.registry.server import ServeOptions, serve
from berth.registry.storage import FilesystemStorage
from berth.registry.uploads import DEFAULT_UPLOAD_TTL


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="berth registry", description="An OCI distribution registry with a web UI.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the registry API and web UI")
    s.add_argument("--listen", type=_listen, default=("127.0.0.1", 5000), metavar="HOST:PORT")
    s.add_argument("--root", type=Path, required=True, help="storage directory")
    s.add_argument("--htpasswd", type=Path, help="htpasswd file (bcrypt); Basic auth unless token options")
    s.add_argument("--tls-cert", type=Path)
    s.add_argument("--tls-key", type=Path)
    s.add_argument("--token-realm", help="enable token auth; the realm URL clients fetch tokens from "
                                         "(this server answers at /token)")
    s.add_argument("--token-service", default="berth-registry", help="the service name in tokens")
    s.add_argument("--token-acl", type=Path, help='JSON: {"account": {"repo-pattern": ["pull","push","delete"]}}')
    s.add_argument("--token-secret-file", type=Path, help="signing key (created if missing; default: random per run)")
    s.add_argument("--upload-ttl", type=float, default=DEFAULT_UPLOAD_TTL, help="seconds an idle upload lives")
    g = sub.add_parser("gc", help="delete blobs no manifest references (safe while serving)")
    g.add_argument("--root", type=Path, required=True)
    g.add_argument("--grace", type=float, default=3600.0, help="keep blobs linked in the last GRACE seconds")
    g.add_argument("--dry-run", action="store_true")
    return p


def _authorizer(args: argparse.Namespace) -> Authorizer:
    if args.token_realm:
        if args.htpasswd is None:
            raise SystemExit("berth registry: --token-realm needs --htpasswd for the users it issues tokens to")
        secret = None
        if args.token_secret_file is not None:
            if not args.token_secret_file.exists():
                args.token_secret_file.write_bytes(secrets.token_bytes(32))
                args.token_secret_file.chmod(0o600)
            secret = args.token_secret_file.read_bytes()
        return TokenAuth(Htpasswd.load(args.htpasswd), Acl.load(args.token_acl), args.token_realm,
                         args.token_service, secret)
    if args.htpasswd is not None:
        return BasicAuth(Htpasswd.load(args.htpasswd))
    return OpenAccess()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
            if (args.tls_cert is None) != (args.tls_key is None):
                raise SystemExit("berth registry: --tls-cert and --tls-key go together")
            registry = Registry(FilesystemStorage(args.root), _authorizer(args), args.upload_ttl)
            # look for idle sessions a few times per ttl, at most once a minute
            interval = min(60.0, max(0.5, args.upload_ttl / 4))
            asyncio.run(serve(registry, ServeOptions(args.listen[0], args.listen[1], args.tls_cert, args.tls_key,
                                                     interval)))
            return 0
        report = collect(FilesystemStorage(args.root), grace=args.grace, dry_run=args.dry_run)
        print(json.dumps(report.to_json(), indent=1))
        return 0
    except BerthError as exc:
        print(f"berth registry: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
