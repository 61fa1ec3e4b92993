"""The command table for containers, networks, volumes and the system commands: docker's flags, usage lines and
argument counts. main.py merges it into its own table; each handler lives in the module named in its `lazy()`
and is imported only when that command runs.

May import: the standard library (argparse). Nothing else: this module is on every CLI call's import path.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def _fmt(p: argparse.ArgumentParser, short: bool = False) -> None:
    names = ("-f", "--format") if short else ("--format",)
    p.add_argument(*names, default="", help="Format output using a custom template: 'table', 'table TEMPLATE', "
                   "'json', or a Go template")


def _filter(p: argparse.ArgumentParser, short: bool = True) -> None:
    names = ("-f", "--filter") if short else ("--filter",)
    p.add_argument(*names, action="append", default=[], dest="filter", help="Filter output based on conditions "
                   "provided")


def _containers(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def _container(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", nargs="*", metavar="CONTAINER")


# ---- containers -------------------------------------------------------------------------------------------------

def _run(p: argparse.ArgumentParser) -> None:
    from berth.cli.createopts import add_create_flags
    add_create_flags(p, run=True)


def _create(p: argparse.ArgumentParser) -> None:
    from berth.cli.createopts import add_create_flags
    add_create_flags(p, run=False)


def _start(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    _containers(p)


def _attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", type=_bool, nargs="?", const=True, default=True,
                   help="Proxy all received signals to the process (default true)")
    _container(p)


def _ps(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    _filter(p)
    _fmt(p)
    p.add_argument("-n", "--last", type=_int, default=-1, help="Show n last created containers (includes all "
                   "states) (default -1)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all "
                   "states)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")


def _logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("--since", default="", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or "
                   "relative (e.g. 42m for 42 minutes)")
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs '
                   '(default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--until", default="", help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or "
                   "relative (e.g. 42m for 42 minutes)")
    _container(p)


def _stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="", help="Signal to send to the container")
    p.add_argument("-t", "--timeout", "--time", type=_int, default=None, help="Seconds to wait before killing the "
                   "container")
    _containers(p)


def _kill(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="", help="Signal to send to the container")
    _containers(p)


def _rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses "
                   "SIGKILL)")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the "
                   "container")
    _containers(p)


def _rename(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="CONTAINER NEW_NAME")


def _exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-u", "--user", default="", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")")
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CONTAINER COMMAND [ARG...]")


def _top(p: argparse.ArgumentParser) -> None:
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CONTAINER [ps OPTIONS]")


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    _container(p)


def _commit(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the "
                   "created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", type=_bool, nargs="?", const=True, default=True,
                   help="Pause container during commit (default true)")
    p.add_argument("args", nargs="*", metavar="CONTAINER [REPOSITORY[:TAG]]")


def _cp(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output during copy")
    p.add_argument("paths", nargs="*", metavar="SRC_PATH DEST_PATH")


def _stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    _fmt(p)
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first "
                   "result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    _containers(p)


def _port(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="CONTAINER [PRIVATE_PORT[/PROTO]]")


def _update(p: argparse.ArgumentParser) -> None:
    from berth.cli.createopts import nano_cpus, ram_bytes, swap_bytes

    p.add_argument("--blkio-weight", type=_int, default=None, help="Block IO (relative weight)")
    p.add_argument("--cpu-period", type=_int, default=None, help="Limit CPU CFS period")
    p.add_argument("--cpu-quota", type=_int, default=None, help="Limit CPU CFS quota")
    p.add_argument("-c", "--cpu-shares", type=_int, default=None, help="CPU shares (relative weight)")
    p.add_argument("--cpus", type=nano_cpus, default=None, help="Number of CPUs")
    p.add_argument("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", default=None, help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("-m", "--memory", type=ram_bytes, default=None, help="Memory limit")
    p.add_argument("--memory-reservation", type=ram_bytes, default=None, help="Memory soft limit")
    p.add_argument("--memory-swap", type=swap_bytes, default=None, help="Swap limit equal to memory plus swap: "
                   "-1 to enable unlimited swap")
    p.add_argument("--pids-limit", type=_int, default=None, help="Tune container pids limit (set -1 for "
                   "unlimited)")
    p.add_argument("--restart", default=None, help="Restart policy to apply when a container exits")
    _containers(p)


def _wait(p: argparse.ArgumentParser) -> None:
    _containers(p)


def _prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. \"until=<timestamp>\")")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")


def _inspect_typed(p: argparse.ArgumentParser) -> None:
    _fmt(p, short=True)
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("names", nargs="*", metavar="NAME")


# ---- networks -----------------------------------------------------------------------------------------------------

def _network_create(p: argparse.ArgumentParser) -> None:
    lst: dict[str, Any] = {"action": "append", "default": []}
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--aux-address", **lst, help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
    p.add_argument("--config-from", default="", help="The network from which to copy the configuration")
    p.add_argument("--config-only", action="store_true", help="Create a configuration only network")
    p.add_argument("-d", "--driver", default="bridge", help='Driver to manage the Network (default "bridge")')
    p.add_argument("--gateway", **lst, help="IPv4 or IPv6 Gateway for the master subnet")
    p.add_argument("--ingress", action="store_true", help="Create swarm routing-mesh network")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--ip-range", **lst, help="Allocate container ip from a sub-range")
    p.add_argument("--ipam-driver", default="default", help='IP Address Management Driver (default "default")')
    p.add_argument("--ipam-opt", **lst, help="Set IPAM driver specific options")
    p.add_argument("--ipv4", type=_bool, nargs="?", const=True, default=None, help="Enable or disable IPv4 "
                   "address assignment")
    p.add_argument("--ipv6", type=_bool, nargs="?", const=True, default=None, help="Enable or disable IPv6 "
                   "address assignment")
    p.add_argument("--label", **lst, help="Set metadata on a network")
    p.add_argument("-o", "--opt", **lst, help="Set driver specific options")
    p.add_argument("--scope", default="", help="Control the network's scope")
    p.add_argument("--subnet", **lst, help="Subnet in CIDR format that represents a network segment")
    p.add_argument("name", nargs="*", metavar="NETWORK")


def _network_ls(p: argparse.ArgumentParser) -> None:
    _filter(p)
    _fmt(p)
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")


def _network_inspect(p: argparse.ArgumentParser) -> None:
    _fmt(p, short=True)
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
    p.add_argument("names", nargs="*", metavar="NETWORK")


def _network_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")
    p.add_argument("names", nargs="*", metavar="NETWORK")


def _network_connect(p: argparse.ArgumentParser) -> None:
    lst: dict[str, Any] = {"action": "append", "default": []}
    p.add_argument("--alias", **lst, help="Add network-scoped alias for the container")
    p.add_argument("--driver-opt", **lst, help="driver options for the network")
    p.add_argument("--gw-priority", type=_int, default=0, help="Highest gw-priority provides the default gateway")
    p.add_argument("--ip", default="", help="IPv4 address (e.g., \"172.30.100.104\")")
    p.add_argument("--ip6", default="", help="IPv6 address (e.g., \"2001:db8::33\")")
    p.add_argument("--link", **lst, help="Add link to another container")
    p.add_argument("--link-local-ip", **lst, help="Add a link-local address for the container")
    p.add_argument("args", nargs="*", metavar="NETWORK CONTAINER")


def _network_disconnect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")
    p.add_argument("args", nargs="*", metavar="NETWORK CONTAINER")


# ---- volumes ------------------------------------------------------------------------------------------------------

def _volume_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--name", default="", help="Specify volume name")
    p.add_argument("name_arg", nargs="*", metavar="VOLUME")


def _volume_ls(p: argparse.ArgumentParser) -> None:
    _filter(p)
    _fmt(p)
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p.add_argument("--cluster", action="store_true", help="Display only cluster volumes")


def _volume_inspect(p: argparse.ArgumentParser) -> None:
    _fmt(p, short=True)
    p.add_argument("names", nargs="*", metavar="VOLUME")


def _volume_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
    p.add_argument("names", nargs="*", metavar="VOLUME")


def _volume_prune(p: argparse.ArgumentParser) -> None:
    _prune(p)
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")


# ---- system -------------------------------------------------------------------------------------------------------

def _events(p: argparse.ArgumentParser) -> None:
    _filter(p)
    _fmt(p)
    p.add_argument("--since", default="", help="Show all events created since timestamp")
    p.add_argument("--until", default="", help="Stream events until this timestamp")


def _df(p: argparse.ArgumentParser) -> None:
    _fmt(p)
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")


def _system_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. \"label=<key>=<value>\")")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")


def register(top: dict[str, Any], groups: dict[str, dict[str, Any]], command: Callable[..., Any],
             lazy: Callable[[str, str], Callable[..., int]]) -> None:
    """Add these commands to main's tables (`command` is main.Command, `lazy` main._lazy)."""
    def c(usage: str, summary: str, setup: Callable[[argparse.ArgumentParser], None], module: str, fn: str,
          positional: str = "", nargs: tuple[int, int | None] = (0, 0), interspersed: bool = True) -> Any:
        return command(usage, summary, setup, lazy(module, fn), positional, nargs, interspersed=interspersed)

    run = c("run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image", _run, "run",
            "run_run", "argv", (1, None), interspersed=False)
    create = c("create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", _create, "run", "run_create",
               "argv", (1, None), interspersed=False)
    start = c("start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", _start, "run",
              "run_start", "containers", (1, None))
    attach = c("attach [OPTIONS] CONTAINER", "Attach local standard input, output, and error streams to a running "
               "container", _attach, "run", "run_attach", "container", (1, 1))
    ps = c("ps [OPTIONS]", "List containers", _ps, "containers", "run_ps")
    logs = c("logs [OPTIONS] CONTAINER", "Fetch the logs of a container", _logs, "containers", "run_logs",
             "container", (1, 1))
    stop = c("stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", _stop, "containers",
             "run_stop", "containers", (1, None))
    kill = c("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", _kill, "containers",
             "run_kill", "containers", (1, None))
    rm = c("rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", _rm, "containers", "run_rm",
           "containers", (1, None))
    restart = c("restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", _stop, "containers",
                "run_restart", "containers", (1, None))
    pause = c("pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", _containers,
              "containers", "run_pause", "containers", (1, None))
    unpause = c("unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
                _containers, "containers", "run_unpause", "containers", (1, None))
    rename = c("rename CONTAINER NEW_NAME", "Rename a container", _rename, "containers", "run_rename", "names",
               (2, 2))
    wait = c("wait CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit "
             "codes", _wait, "containers", "run_wait", "containers", (1, None))
    exec_ = c("exec [OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container", _exec,
              "execs", "run_exec", "argv", (2, None), interspersed=False)
    top_ = c("top CONTAINER [ps OPTIONS]", "Display the running processes of a container", _top, "containers",
             "run_top", "argv", (1, None), interspersed=False)
    diff = c("diff CONTAINER", "Inspect changes to files or directories on a container's filesystem", _container,
             "containers", "run_diff", "container", (1, 1))
    export = c("export [OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", _export,
               "containers", "run_export", "container", (1, 1))
    commit = c("commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes",
               _commit, "containers", "run_commit", "args", (1, 2))
    cp = c("cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
           "Copy files/folders between a container and the local filesystem", _cp, "copy", "run_cp", "paths", (2, 2))
    stats = c("stats [OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics",
              _stats, "stats", "run_stats")
    port = c("port CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container",
             _port, "containers", "run_port", "args", (1, 2))
    update = c("update [OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers",
               _update, "containers", "run_update", "containers", (1, None))
    cprune = c("prune [OPTIONS]", "Remove all stopped containers", _prune, "containers", "run_prune")
    cinspect = c("inspect [OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more "
                 "containers", _inspect_typed, "containers", "run_container_inspect", "names", (1, None))
    events = c("events [OPTIONS]", "Get real time events from the server", _events, "events", "run_events")
    df = c("df [OPTIONS]", "Show docker disk usage", _df, "sysdisk", "run_df")
    sprune = c("prune [OPTIONS]", "Remove unused data", _system_prune, "sysdisk", "run_system_prune")

    top.update({"run": run, "create": create, "start": start, "attach": attach, "ps": ps, "logs": logs,
                "stop": stop, "kill": kill, "rm": rm, "restart": restart, "pause": pause, "unpause": unpause,
                "rename": rename, "wait": wait, "exec": exec_, "top": top_, "diff": diff, "export": export,
                "commit": commit, "cp": cp, "stats": stats, "port": port, "update": update, "events": events})
    groups["container"] = {
        "attach": attach, "commit": commit, "cp": cp, "create": create, "diff": diff, "exec": exec_,
        "export": export, "inspect": cinspect, "kill": kill, "logs": logs, "ls": ps, "list": ps, "ps": ps,
        "pause": pause, "port": port, "prune": cprune, "rename": rename, "restart": restart, "rm": rm,
        "remove": rm, "run": run, "start": start, "stats": stats, "stop": stop, "top": top_, "unpause": unpause,
        "update": update, "wait": wait}
    n = "networks"
    groups["network"] = {
        "create": c("network create [OPTIONS] NETWORK", "Create a network", _network_create, n, "run_network_create",
                    "name", (1, 1)),
        "connect": c("network connect [OPTIONS] NETWORK CONTAINER", "Connect a container to a network",
                     _network_connect, n, "run_network_connect", "args", (2, 2)),
        "disconnect": c("network disconnect [OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network",
                        _network_disconnect, n, "run_network_disconnect", "args", (2, 2)),
        "inspect": c("network inspect [OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or "
                     "more networks", _network_inspect, n, "run_network_inspect", "names", (1, None)),
        "prune": c("network prune [OPTIONS]", "Remove all unused networks", _prune, n, "run_network_prune"),
    }
    nls = c("network ls [OPTIONS]", "List networks", _network_ls, n, "run_network_ls")
    nrm = c("network rm NETWORK [NETWORK...]", "Remove one or more networks", _network_rm, n, "run_network_rm",
            "names", (1, None))
    groups["network"].update({"ls": nls, "list": nls, "rm": nrm, "remove": nrm})
    v = "volumes"
    vls = c("volume ls [OPTIONS]", "List volumes", _volume_ls, v, "run_volume_ls")
    vrm = c("volume rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", _volume_rm, v, "run_volume_rm",
            "names", (1, None))
    groups["volume"] = {
        "create": c("volume create [OPTIONS] [VOLUME]", "Create a volume", _volume_create, v, "run_volume_create",
                    "name_arg", (0, 1)),
        "inspect": c("volume inspect [OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more "
                     "volumes", _volume_inspect, v, "run_volume_inspect", "names", (1, None)),
        "ls": vls, "list": vls, "rm": vrm, "remove": vrm,
        "prune": c("volume prune [OPTIONS]", "Remove unused local volumes", _volume_prune, v, "run_volume_prune"),
    }
    groups.setdefault("system", {}).update({"df": df, "events": events, "prune": sprune})
