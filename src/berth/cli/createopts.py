"""`run` and `create` flags, and the create request docker's CLI builds from them.

`add_create_flags(parser)` declares docker's flags (same names, shorthands and defaults); `create_request(a, ...)`
turns the parsed flags into the `/containers/create` JSON body, parsing what docker's CLI parses on the client side
(ports, env files, volumes and --mount, ulimits, sizes, durations, security options) and raising UsageError (exit
125, "See 'berth run --help'.") the way docker reports those. The daemon checks the rest (capabilities, restart
policy names, limits against the machine).

May import: the standard library, berth.cli.context, berth.cli.units, berth.errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from berth.cli.context import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


class CreateFlagError(UsageError):
    """A flag value docker's CLI rejects before calling the daemon: `docker: <message>.` and exit 125."""

    def __init__(self, message: str, plain: bool = False) -> None:
        super().__init__(message, exit_code=125)
        self.plain = plain   # printed as is, without "berth: " and the help line


# ---- value types (argparse `type=`): errors read like docker's pflag errors --------------------------------------

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _bad(value: str, why: str) -> argparse.ArgumentTypeError:
    """A type error main's parser prints as docker does: invalid argument "VALUE" for "-m, --memory" flag: WHY."""
    return argparse.ArgumentTypeError(f"{value}\0{why}")


def ram_bytes(text: str) -> int:
    """go-units RAMInBytes: "64m", "1g", "512k", "100" (bytes); binary multiples."""
    m = _SIZE.match(text.strip())
    if not m:
        num = re.match(r"^\d+(?:\.\d+)?", text.strip())
        if num and text.strip()[num.end():]:
            raise _bad(text, f"invalid suffix: '{text.strip()[num.end():]}'")
        raise _bad(text, f"invalid size: '{text}'")
    return int(float(m.group(1)) * _BINARY[(m.group(2) or "").lower()])


def swap_bytes(text: str) -> int:
    return -1 if text.strip() == "-1" else ram_bytes(text)


def nano_cpus(text: str) -> int:
    """opts.NanoCPUs: a decimal number of CPUs, exact to the nanocpu."""
    m = re.fullmatch(r"(-?)(\d*)(?:\.(\d*))?", text.strip())
    if not m or not (m.group(2) or m.group(3)):
        raise _bad(text, f"failed to parse {text} as a rational number")
    frac = (m.group(3) or "").rstrip("0")
    if len(frac) > 9:
        raise _bad(text, "value is too precise")
    value = int(m.group(2) or 0) * 10**9 + int((frac or "0").ljust(9, "0"))
    return -value if m.group(1) else value


_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def duration_ns(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m:
            raise _bad(text, f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise _bad(text, f'time: invalid duration "{text}"')
    return sign * int(total)


def go_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _bad(text, f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


_ULIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
                 "rtprio", "rttime", "sigpending", "stack"}


def ulimit(text: str) -> dict[str, Any]:
    """go-units ParseUlimit: name=soft[:hard]."""
    name, sep, values = text.partition("=")
    if not sep:
        raise _bad(text, f"invalid ulimit argument: {text}")
    if name not in _ULIMIT_NAMES:
        raise _bad(text, f"invalid ulimit type: {name}")
    soft_text, has_hard, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
    except ValueError:
        raise _bad(text, f'strconv.ParseInt: parsing "{soft_text}": invalid syntax') from None
    hard = soft
    if has_hard:
        try:
            hard = int(hard_text)
        except ValueError:
            raise _bad(text, f'strconv.ParseInt: parsing "{hard_text}": invalid syntax') from None
    if soft > hard:
        raise _bad(text, f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def add_host(text: str) -> str:
    """opts.ValidateExtraHost: host:ip (or host=ip), ip may be "host-gateway"."""
    sep = "=" if "=" in text else ":"
    host, found, ip = text.partition(sep)
    if not found or not host or not ip:
        raise _bad(text, f'bad format for add-host: "{text}"')
    if ip != "host-gateway" and not re.fullmatch(r"[0-9.]+|\[?[0-9a-fA-F:.]+\]?", ip):
        raise _bad(text, f'invalid IP address in add-host: "{ip}"')
    return f"{host}:{ip.strip('[]')}"


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise _bad(text, f'strconv.ParseBool: parsing "{text}": invalid syntax')


# ---- the flags ---------------------------------------------------------------------------------------------------

def add_create_flags(p: argparse.ArgumentParser, run: bool) -> None:
    """docker create's flags; `run` adds run's (-d, --rm is shared, --sig-proxy, --detach-keys)."""
    for holder in (p, *p._action_groups):  # -h is --hostname here, as in docker; --help stays
        holder.conflict_handler = "resolve"
    # values like "-1s" (--health-interval) or "-1" (--memory-swap) are values, not flags: no flag of docker's
    # run looks like that, so argparse may treat them as it treats negative numbers
    p._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[a-zµ]*$")
    lst: dict[str, Any] = {"action": "append", "default": []}
    p.add_argument("-a", "--attach", **lst, help="Attach to STDIN, STDOUT or STDERR")
    p.add_argument("--add-host", **lst, type=add_host, help="Add a custom host-to-IP mapping (host:ip)")
    p.add_argument("--annotation", **lst, help="Add an annotation to the container (passed through to the OCI "
                   "runtime)")
    p.add_argument("--blkio-weight", type=go_int, default=0, help="Block IO (relative weight)")
    p.add_argument("--cap-add", **lst, help="Add Linux capabilities")
    p.add_argument("--cap-drop", **lst, help="Drop Linux capabilities")
    p.add_argument("--cgroup-parent", default="", help="Optional parent cgroup for the container")
    p.add_argument("--cgroupns", default="", help="Cgroup namespace to use (host|private)")
    p.add_argument("--cidfile", default="", help="Write the container ID to the file")
    p.add_argument("--cpu-period", type=go_int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) period")
    p.add_argument("--cpu-quota", type=go_int, default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("-c", "--cpu-shares", type=go_int, default=0, help="CPU shares (relative weight)")
    p.add_argument("--cpus", type=nano_cpus, default=0, help="Number of CPUs")
    p.add_argument("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("--device", **lst, help="Add a host device to the container")
    p.add_argument("--dns", **lst, help="Set custom DNS servers")
    p.add_argument("--dns-option", **lst, help="Set DNS options")
    p.add_argument("--dns-search", **lst, help="Set custom DNS search domains")
    p.add_argument("--domainname", default="", help="Container NIS domain name")
    p.add_argument("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-e", "--env", **lst, help="Set environment variables")
    p.add_argument("--env-file", **lst, help="Read in a file of environment variables")
    p.add_argument("--expose", **lst, help="Expose a port or a range of ports")
    p.add_argument("--group-add", **lst, help="Add additional groups to join")
    p.add_argument("--health-cmd", default="", help="Command to run to check health")
    p.add_argument("--health-interval", type=duration_ns, default=0, help="Time between running the check "
                   "(ms|s|m|h) (default 0s)")
    p.add_argument("--health-retries", type=go_int, default=0, help="Consecutive failures needed to report "
                   "unhealthy")
    p.add_argument("--health-start-interval", type=duration_ns, default=0, help="Time between running the check "
                   "during the start period (ms|s|m|h) (default 0s)")
    p.add_argument("--health-start-period", type=duration_ns, default=0, help="Start period for the container to "
                   "initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
    p.add_argument("--health-timeout", type=duration_ns, default=0, help="Maximum time to allow one check to run "
                   "(ms|s|m|h) (default 0s)")
    p.add_argument("-h", "--hostname", default="", help="Container host name")
    p.add_argument("--init", action="store_true", default=None, help="Run an init inside the container that "
                   "forwards signals and reaps processes")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
    p.add_argument("--ipc", default="", help="IPC mode to use")
    p.add_argument("-l", "--label", **lst, help="Set meta data on a container")
    p.add_argument("--label-file", **lst, help="Read in a line delimited file of labels")
    p.add_argument("--link", **lst, help="Add link to another container")
    p.add_argument("--log-driver", default="", help="Logging driver for the container")
    p.add_argument("--log-opt", **lst, help="Log driver options")
    p.add_argument("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    p.add_argument("-m", "--memory", type=ram_bytes, default=0, help="Memory limit")
    p.add_argument("--memory-reservation", type=ram_bytes, default=0, help="Memory soft limit")
    p.add_argument("--memory-swap", type=swap_bytes, default=0, help="Swap limit equal to memory plus swap: '-1' "
                   "to enable unlimited swap")
    p.add_argument("--memory-swappiness", type=go_int, default=-1, help="Tune container memory swappiness (0 to "
                   "100) (default -1)")
    p.add_argument("--mount", **lst, type=mount_flag, help="Attach a filesystem mount to the container")
    p.add_argument("--name", default="", help="Assign a name to the container")
    p.add_argument("--network", "--net", default="", help="Connect a container to a network")
    p.add_argument("--network-alias", "--net-alias", **lst, help="Add network-scoped alias for the container")
    p.add_argument("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    p.add_argument("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    p.add_argument("--oom-score-adj", type=go_int, default=0, help="Tune host's OOM preferences (-1000 to 1000)")
    p.add_argument("--pid", default="", help="PID namespace to use")
    p.add_argument("--pids-limit", type=go_int, default=None, help="Tune container pids limit (set -1 for "
                   "unlimited)")
    p.add_argument("--platform", default="", help="Set platform if server is multi-platform capable")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to this container")
    p.add_argument("-p", "--publish", **lst, help="Publish a container's port(s) to the host")
    p.add_argument("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    p.add_argument("--pull", default="missing", choices=("always", "missing", "never"),
                   help='Pull image before running ("always", "missing", "never")')
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the pull output")
    p.add_argument("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    p.add_argument("--restart", default="no", help="Restart policy to apply when a container exits")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container and its associated "
                   "anonymous volumes when it exits")
    p.add_argument("--runtime", default="", help="Runtime to use for this container")
    p.add_argument("--security-opt", **lst, help="Security Options")
    p.add_argument("--shm-size", type=ram_bytes, default=0, help="Size of /dev/shm")
    p.add_argument("--stop-signal", default="", help="Signal to stop the container")
    p.add_argument("--stop-timeout", type=go_int, default=None, help="Timeout (in seconds) to stop a container")
    p.add_argument("--storage-opt", **lst, help="Storage driver options for the container")
    p.add_argument("--sysctl", **lst, help="Sysctl options")
    p.add_argument("--tmpfs", **lst, help="Mount a tmpfs directory")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--ulimit", **lst, type=ulimit, help="Ulimit options")
    p.add_argument("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--userns", default="", help="User namespace to use")
    p.add_argument("--uts", default="", help="UTS namespace to use")
    p.add_argument("-v", "--volume", **lst, help="Bind mount a volume")
    p.add_argument("--volume-driver", default="", help="Optional volume driver for the container")
    p.add_argument("--volumes-from", **lst, help="Mount volumes from the specified container(s)")
    p.add_argument("-w", "--workdir", default="", help="Working directory inside the container")
    if run:
        p.add_argument("-d", "--detach", action="store_true", help="Run container in background and print "
                       "container ID")
        p.add_argument("--detach-keys", default="", help="Override the key sequence for detaching a container")
        p.add_argument("--sig-proxy", type=_bool, nargs="?", const=True, default=True,
                       help="Proxy received signals to the process (default true)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="IMAGE [COMMAND] [ARG...]")


# ---- client-side parsing -------------------------------------------------------------------------------------------

_ENV_NAME_SPACE = re.compile(r"\s")


def read_kv_file(path: str, what: str, environ: Mapping[str, str]) -> list[str]:
    """docker's env/label file: one entry per line, `#` comments and blank lines skipped; a bare NAME in an env
    file takes the caller's value (and is dropped when unset)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise CreateFlagError(f"open {path}: {(exc.strerror or '').lower()}") from exc
    out: list[str] = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if _ENV_NAME_SPACE.search(name):
            raise CreateFlagError(f"variable '{name}' contains whitespaces")
        if not name:
            raise CreateFlagError(f"invalid {what} file: {path}: no variable name on line '{raw}'")
        if sep:
            out.append(f"{name}={value}")
        elif what == "env":
            if name in environ:
                out.append(f"{name}={environ[name]}")
        else:
            out.append(name)
    return out


def env_list(files: Iterable[str], items: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for path in files:
        out += read_kv_file(path, "env", environ)
    for item in items:
        name, sep, _ = item.partition("=")
        if not name:
            raise CreateFlagError(f'invalid argument "{item}" for "-e, --env" flag: invalid environment variable: '
                                  f"{item}")
        if not sep and name in environ:
            item = f"{name}={environ[name]}"
        out.append(item)
    return out


def label_map(files: Iterable[str], items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in [*(x for f in files for x in read_kv_file(f, "label", {})), *items]:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _port_range(text: str, what: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    lo, sep, hi = text.partition("-")
    try:
        start, end = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise CreateFlagError(f"invalid {what}: {text}") from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise CreateFlagError(f"invalid {what}: {text}")
    return start, end


def parse_port_specs(specs: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """go-connections nat.ParsePortSpecs: [ip:][hostPort:]containerPort[/proto] with ranges."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        raw, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto.lower() not in ("tcp", "udp", "sctp"):
            raise CreateFlagError(f"invalid proto: {proto}")
        ip, host_port, container_port = "", "", raw
        if raw.startswith("["):   # [ipv6]:hostPort:containerPort
            end = raw.find("]")
            ip, rest = raw[1:end], raw[end + 2:]
            host_port, _, container_port = rest.rpartition(":")
        else:
            parts = raw.split(":")
            if len(parts) == 2:
                host_port, container_port = parts
            elif len(parts) == 3:
                ip, host_port, container_port = parts
            elif len(parts) > 3:
                ip = ":".join(parts[:-2])
                host_port, container_port = parts[-2:]
        if ip and not re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", ip):
            raise CreateFlagError(f"invalid IP address: {ip}")
        if not container_port:
            raise CreateFlagError(f"no port specified: {spec}<empty>")
        c_start, c_end = _port_range(container_port, "containerPort")
        h_start, h_end = _port_range(host_port, "hostPort")
        if host_port and (h_end - h_start) != (c_end - c_start) and c_end != c_start:
            raise CreateFlagError(f"invalid ranges specified for container and host Ports: {container_port} and "
                                  f"{host_port}")
        for i in range(c_end - c_start + 1):
            key = f"{c_start + i}/{proto.lower()}"
            hp = str(h_start + i) if host_port else ""
            if c_start == c_end and h_start != h_end:
                hp = f"{hp}-{h_end}"   # one container port, a host range to pick from
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    return exposed, bindings


def parse_expose(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        port, _, proto = item.partition("/")
        start, end = _port_range(port, "range format for --expose specification")
        for p in range(start, end + 1):
            out[f"{p}/{proto or 'tcp'}"] = {}
    return out


def _is_file_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def parse_volumes(specs: Iterable[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """-v: `src:dst[:opts]` become Binds (relative `./x` made absolute), a bare `/dst` an anonymous volume."""
    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for spec in specs:
        parts = spec.split(":")
        if not spec:
            raise CreateFlagError("invalid empty volume spec")
        if len(parts) > 3:
            raise CreateFlagError(f"invalid spec: {spec}: too many colons")
        if any(not x for x in parts):
            raise CreateFlagError(f"invalid spec: {spec}: empty section between colons")
        if len(parts) == 1:   # an anonymous volume; the daemon checks its path
            volumes[parts[0]] = {}
            continue
        source = parts[0]
        if _is_file_path(source) and source.startswith("."):
            source = os.path.abspath(source)
        elif source.startswith("~"):
            source = os.path.expanduser(source)
        binds.append(":".join([source, *parts[1:]]))
    return binds, volumes


def parse_mount(spec: str) -> dict[str, Any]:
    """--mount type=bind|volume|tmpfs,source=..,target=..,readonly,bind-propagation=..,volume-nocopy,..."""
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in _csv_fields(spec):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid field '{field}' must "
                                  "be a key=value pair")
        if key == "type":
            mount["Type"] = value   # the daemon judges the type
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _flag_bool(value, spec, field) if sep else True
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _flag_bool(value, spec, field) if sep else True
        elif key == "volume-nocopy":
            volume["NoCopy"] = _flag_bool(value, spec, field) if sep else True
        elif key == "volume-label":
            k, _, v = value.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            volume["Subpath"] = value
        elif key == "tmpfs-size":
            try:
                tmpfs["SizeBytes"] = ram_bytes(value)
            except argparse.ArgumentTypeError as exc:
                raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: "
                                      f"{str(exc).partition(chr(0))[2]}") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid value for "
                                      f"{key}: {value}") from None
        else:
            raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{key}' in "
                                  f"'{field}'")
    if not mount.get("Target"):
        raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: target is required")
    if bind:
        if mount["Type"] != "bind":
            raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: cannot mix 'bind-*' options "
                                  f"with mount type '{mount['Type']}'")
        mount["BindOptions"] = bind
    if volume:
        if mount["Type"] != "volume":
            raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: cannot mix 'volume-*' options "
                                  f"with mount type '{mount['Type']}'")
        mount["VolumeOptions"] = volume
    if tmpfs:
        if mount["Type"] != "tmpfs":
            raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: cannot mix 'tmpfs-*' options "
                                  f"with mount type '{mount['Type']}'")
        mount["TmpfsOptions"] = tmpfs
    return mount


def mount_flag(spec: str) -> dict[str, Any]:
    """--mount as an argparse type: its errors are flag errors, printed with the usage line as docker does."""
    try:
        return parse_mount(spec)
    except CreateFlagError as exc:
        raise _bad(spec, str(exc).partition(" flag: ")[2] or str(exc)) from None


def _csv_fields(spec: str) -> list[str]:
    import csv

    rows = list(csv.reader([spec]))
    return rows[0] if rows else []


def _flag_bool(value: str, spec: str, field: str) -> bool:
    low = value.lower()
    if low in ("1", "true", "t"):
        return True
    if low in ("0", "false", "f"):
        return False
    raise CreateFlagError(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid value for '{field}': invalid "
                          "boolean value (\"" + value + "\"): must be one of \"true\", \"1\", \"false\", or \"0\" "
                          "(default \"true\")")


def parse_tmpfs(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        path, _, opts = item.partition(":")
        if not path.startswith("/"):
            raise CreateFlagError(f"invalid mount path: '{path}' mount path must be absolute")
        out[path] = opts
    return out


def parse_security_opts(items: Iterable[str]) -> list[str]:
    """--security-opt: key=value (or the legacy key:value); seccomp=<file> is sent as the profile's JSON."""
    out: list[str] = []
    for item in items:
        if item in ("no-new-privileges", "no-new-privileges=true"):
            out.append(item)
            continue
        key, sep, value = item.partition("=")
        if not sep:
            key, sep, value = item.partition(":")
        if not sep:
            raise CreateFlagError(f'Invalid --security-opt: "{item}"')
        if key == "seccomp" and value not in ("unconfined", "builtin"):
            try:
                with open(value, "rb") as f:
                    profile = json.load(f)
            except OSError as exc:
                raise CreateFlagError(f"opening seccomp profile ({value}) failed: open {value}: "
                                      f"{(exc.strerror or '').lower()}") from exc
            except ValueError as exc:
                raise CreateFlagError(f"compacting json for seccomp profile ({value}) failed: {exc}") from exc
            out.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
            continue
        out.append(f"{key}={value}")
    return out


def parse_restart(text: str) -> dict[str, Any]:
    name, sep, count = text.partition(":")
    if sep and not name:
        raise CreateFlagError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise CreateFlagError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


def parse_log_opts(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CreateFlagError(f'invalid argument "{item}" for "--log-opt" flag: invalid key value pair format '
                                  f"'{item}'")
        out[key] = value
    return out


def parse_devices(items: Iterable[str]) -> list[dict[str, str]]:
    out = []
    for item in items:
        parts = item.split(":")
        host = parts[0]
        inner = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        out.append({"PathOnHost": host, "PathInContainer": inner, "CgroupPermissions": perms})
    return out


def normalize_caps(items: Iterable[str]) -> list[str]:
    """docker's opts.CapabilitiesMap: upper case, "CAP_" added (except ALL), duplicates dropped."""
    out: list[str] = []
    for item in items:
        cap = item.strip().upper()
        if cap and cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap and cap not in out:
            out.append(cap)
    return out


# ---- the request ----------------------------------------------------------------------------------------------------

def _healthcheck(a: argparse.Namespace) -> dict[str, Any] | None:
    changed = a.health_cmd or a.health_interval or a.health_timeout or a.health_start_period or \
        a.health_start_interval or a.health_retries
    if a.no_healthcheck:
        if changed:
            raise CreateFlagError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not changed:
        return None
    for name in ("interval", "timeout", "start_period", "start_interval"):
        if getattr(a, f"health_{name}") < 0:
            raise CreateFlagError(f"--health-{name.replace('_', '-')} cannot be negative")
    if a.health_retries < 0:
        raise CreateFlagError("--health-retries cannot be negative")
    test = ["CMD-SHELL", a.health_cmd] if a.health_cmd else None
    return {"Test": test, "Interval": a.health_interval, "Timeout": a.health_timeout,
            "StartPeriod": a.health_start_period, "StartInterval": a.health_start_interval,
            "Retries": a.health_retries}


def create_request(a: argparse.Namespace, environ: Mapping[str, str], detach: bool,
                   console: tuple[int, int] | None) -> dict[str, Any]:
    """The `/containers/create` body for these flags (image and command from `a.argv`)."""
    image, cmd = a.argv[0], a.argv[1:]
    attach = [s.lower() for s in a.attach]
    for s in attach:
        if s not in ("stdin", "stdout", "stderr"):
            raise CreateFlagError(f"invalid argument \"{s}\" for \"-a, --attach\" flag: valid streams are STDIN, "
                                  "STDOUT and STDERR")
    if detach:
        if attach:
            raise CreateFlagError("conflicting options: cannot specify both --attach and --detach", plain=True)
        stdin = stdout = stderr = False
    elif attach:
        stdin, stdout, stderr = "stdin" in attach, "stdout" in attach, "stderr" in attach
    else:
        stdin, stdout, stderr = a.interactive, True, True
    exposed, bindings = parse_port_specs(a.publish)
    exposed.update(parse_expose(a.expose))
    binds, volumes = parse_volumes(a.volume)
    if a.memory_swappiness != -1 and not 0 <= a.memory_swappiness <= 100:
        raise CreateFlagError(f"invalid value: {a.memory_swappiness}. Valid memory swappiness range is 0-100")
    if a.stop_signal and not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|\d+", a.stop_signal.upper()):
        raise CreateFlagError(f"Invalid signal: {a.stop_signal}")
    if a.cpus and (a.cpu_period or a.cpu_quota):
        raise CreateFlagError("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
    restart = parse_restart(a.restart)
    if a.rm and restart["Name"] not in ("", "no"):
        raise CreateFlagError("conflicting options: cannot specify both --restart and --rm")
    network = a.network or "default"
    endpoint: dict[str, Any] = {}
    if a.network_alias:
        endpoint["Aliases"] = list(a.network_alias)
    if a.ip or a.ip6:
        endpoint["IPAMConfig"] = {k: v for k, v in (("IPv4Address", a.ip), ("IPv6Address", a.ip6)) if v}
    if a.mac_address:
        endpoint["MacAddress"] = a.mac_address
    if a.link:
        endpoint["Links"] = list(a.link)
    host: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": a.cidfile,
        "LogConfig": {"Type": a.log_driver, "Config": parse_log_opts(a.log_opt)},
        "NetworkMode": network, "PortBindings": bindings, "RestartPolicy": restart,
        "AutoRemove": a.rm, "VolumeDriver": a.volume_driver, "VolumesFrom": a.volumes_from or None,
        "ConsoleSize": list(console) if console else [0, 0],
        "Annotations": dict(x.partition("=")[::2] for x in a.annotation) or None,
        "CapAdd": normalize_caps(a.cap_add) or None, "CapDrop": normalize_caps(a.cap_drop) or None, "CgroupnsMode": a.cgroupns,
        "Dns": a.dns, "DnsOptions": a.dns_option, "DnsSearch": a.dns_search, "ExtraHosts": a.add_host or None,
        "GroupAdd": a.group_add or None, "IpcMode": a.ipc, "Cgroup": "", "Links": None,
        "OomScoreAdj": a.oom_score_adj, "PidMode": a.pid, "Privileged": a.privileged,
        "PublishAllPorts": a.publish_all, "ReadonlyRootfs": a.read_only,
        "SecurityOpt": parse_security_opts(a.security_opt) or None,
        "StorageOpt": dict(x.partition("=")[::2] for x in a.storage_opt) or None,
        "Tmpfs": parse_tmpfs(a.tmpfs) or None, "UTSMode": a.uts, "UsernsMode": a.userns, "ShmSize": a.shm_size,
        "Sysctls": dict(x.partition("=")[::2] for x in a.sysctl) or None, "Runtime": a.runtime,
        "Isolation": "", "CpuShares": a.cpu_shares, "Memory": a.memory, "NanoCpus": a.cpus,
        "CgroupParent": a.cgroup_parent, "BlkioWeight": a.blkio_weight, "CpuPeriod": a.cpu_period,
        "CpuQuota": a.cpu_quota, "CpusetCpus": a.cpuset_cpus, "CpusetMems": a.cpuset_mems,
        "Devices": parse_devices(a.device), "MemoryReservation": a.memory_reservation,
        "MemorySwap": a.memory_swap, "MemorySwappiness": a.memory_swappiness,
        "OomKillDisable": a.oom_kill_disable, "PidsLimit": a.pids_limit,
        "Ulimits": a.ulimit or None, "Mounts": list(a.mount) or None,
        "Init": a.init,
    }
    if not a.log_driver and not a.log_opt:
        host["LogConfig"] = {"Type": "", "Config": None}
    body: dict[str, Any] = {
        "Hostname": a.hostname, "Domainname": a.domainname, "User": a.user,
        "AttachStdin": stdin, "AttachStdout": stdout, "AttachStderr": stderr,
        "ExposedPorts": exposed or None, "Tty": a.tty, "OpenStdin": a.interactive,
        "StdinOnce": a.interactive and stdin and not detach,
        "Env": env_list(a.env_file, a.env, environ) or None, "Cmd": cmd or None, "Image": image,
        "Volumes": volumes or None, "WorkingDir": a.workdir,
        "Entrypoint": None if a.entrypoint is None else ([a.entrypoint] if a.entrypoint else [""]),
        "Labels": label_map(a.label_file, a.label), "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {network: endpoint}},
    }
    health = _healthcheck(a)
    if health is not None:
        body["Healthcheck"] = health
    if a.stop_signal:
        body["StopSignal"] = a.stop_signal
    if a.stop_timeout is not None:
        body["StopTimeout"] = a.stop_timeout
    return body   # API 1.44: --mac-address goes in the endpoint only
