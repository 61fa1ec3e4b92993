"""berthd: serves the Docker Engine API on a unix socket (default /run/berth/berth.sock, mode 0660).

`--host unix://PATH` (or tcp://127.0.0.1:PORT for tests that need it), `--root`, `--exec-root`, like dockerd.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from berth.errors import BerthError, Conflict, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.engine.networks import NetworkOptions

DEFAULT_HOST = "unix:///run/berth/berth.sock"
log = logging.getLogger("berthd")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="berthd", description="berth's daemon: the Docker Engine API on a socket")
    p.add_argument("-H", "--host", action="append", default=[], help=f"socket to listen on (default {DEFAULT_HOST})")
    p.add_argument("--root", "--data-root", dest="root", default=os.environ.get("BERTH_ROOT", "/var/lib/berth"),
                   help="persistent state (default /var/lib/berth)")
    p.add_argument("--exec-root", default=os.environ.get("BERTH_EXEC_ROOT", "/run/berth"),
                   help="volatile state: locks, runtime state (default /run/berth)")
    p.add_argument("-p", "--pidfile", default="", help="write the daemon's pid here")
    p.add_argument("-l", "--log-level", default="info", choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true")
    p.add_argument("--group", default="", help="group that owns the socket (default: root)")
    p.add_argument("-b", "--bridge", default="berth0", help="the default bridge network's Linux bridge (default berth0)")
    p.add_argument("--bip", default="172.31.0.1/16", help="the default bridge's address and subnet (default "
                   "172.31.0.1/16)")
    p.add_argument("--default-address-pool", action="append", default=[], metavar="base=CIDR,size=N",
                   help="where user-defined networks get subnets (default base=10.220.0.0/16,size=24)")
    p.add_argument("--mtu", type=int, default=1500, help="the containers' interfaces' MTU (default 1500)")
    p.add_argument("--init", action="store_true", help="run an init (tini) as PID 1 in containers that do not "
                                                         "choose (HostConfig.Init null)")
    return p.parse_args(argv)


def _unix_path(host: str) -> Path:
    if not host.startswith("unix://"):
        raise InvalidArgument(f"unsupported --host {host!r}: berthd listens on unix:// sockets only")
    return Path(host[len("unix://"):])


def _bind_unix(path: Path, group: str) -> socket.socket:
    """Bind with a umask that makes the socket 0600 from its first instant, then open it to 0660."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise InvalidArgument(f"{path} exists and is not a socket; remove it or choose another --host")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink()   # stale socket of a daemon that died
        else:
            raise Conflict(f"another daemon is already listening on {path}")
        finally:
            probe.close()
    gid = 0
    if group:       # before binding: an unknown group must leave no socket behind
        import grp
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise InvalidArgument(f"group {group!r} not found: create it or choose another --group") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(512)
    sock.setblocking(False)
    return sock


def network_options(args: argparse.Namespace) -> NetworkOptions:
    from ipaddress import IPv4Interface

    from berth.engine.networks import NetworkOptions
    from berth.network.ipam import AddressPool
    try:
        bip = IPv4Interface(args.bip)
    except ValueError:
        raise InvalidArgument(f"invalid --bip {args.bip!r}: expected an address with its prefix, e.g. "
                              f"172.31.0.1/16") from None
    pools = tuple(AddressPool.parse(p) for p in args.default_address_pool)
    return NetworkOptions(args.bridge, bip, pools or NetworkOptions().pools, args.mtu)


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from berth.api import memory
    from berth.api.app import make_app
    from berth.engine.engine import Engine, EngineConfig
    from berth.util.locks import try_lock

    root, exec_root = Path(args.root), Path(args.exec_root)
    exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = try_lock(exec_root / "berthd.lock")
    if lock_fd is None:
        raise Conflict(f"another berthd is running with --exec-root {exec_root}; stop it or choose another")
    memory.limit_arenas()   # before the worker threads: each would get a malloc heap of its own
    # Blocking engine calls run in threads, and some block for long (wait, attach, logs -f): room for many.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=512, thread_name_prefix="api"))
    engine = Engine(EngineConfig(root, exec_root, network_options(args), init=args.init))
    for cleaned in engine.recover():
        log.info("recovered: %s", cleaned)
    hosts = args.host or [DEFAULT_HOST]
    sockets = [_bind_unix(_unix_path(h), args.group) for h in hosts]
    app = make_app(engine)
    app.middlewares.append(memory.TrimWhenIdle().middleware)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    for sock in sockets:
        await web.SockSite(runner, sock).start()
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")
    log.info("berthd %s listening on %s (root %s)", os.getpid(), ", ".join(hosts), root)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("berthd shutting down")
        engine.shutdown()
        await runner.cleanup()
        for h in hosts:
            with contextlib.suppress(FileNotFoundError):
                _unix_path(h).unlink()
        if args.pidfile:
            with contextlib.suppress(FileNotFoundError):
                Path(args.pidfile).unlink()
        os.close(lock_fd)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    level = logging.DEBUG if args.debug else getattr(logging, args.log_level.upper().replace("WARN", "WARNING")
                                                     .replace("FATAL", "CRITICAL"))
    logging.basicConfig(level=level, format="%(asctime)s berthd %(levelname)s %(message)s", stream=sys.stderr)
    try:
        asyncio.run(_serve(args))
    except BerthError as exc:
        print(f"berthd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
