"""Pure pieces of the classic builder's behaviour: history texts, build-arg scoping, config rules.

The `created_by` texts are the ones Docker's classic builder writes (`docker history` shows them):
metadata steps `/bin/sh -c #(nop)  ENV a=b` (its Cmd is `[/bin/sh -c "#(nop) " "ENV a=b"]` joined by spaces),
COPY `/bin/sh -c #(nop) COPY file:<hex> in /dst `, RUN `/bin/sh -c cmd`, prefixed with `|N k=v ...` when build
args are in scope (sorted; the predefined proxy args only when the Dockerfile declares them).

May import: berth.oci, berth.errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidArgument
from berth.oci.config import ContainerConfig, Healthcheck

DEFAULT_SHELL = ("/bin/sh", "-c")
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


def nop(text: str, shell: Sequence[str] = ()) -> str:
    """A metadata step's history text: the stage's shell, then `#(nop) ` and the step, joined by spaces."""
    return " ".join(shell or DEFAULT_SHELL) + " #(nop)  " + text


def go_quote(items: Sequence[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def go_list(items: Sequence[str]) -> str:
    """Go's %v of a []string: [a b]."""
    return "[" + " ".join(items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration String() for the values a HEALTHCHECK takes."""
    if ns == 0:
        return "0s"
    out = ""
    seconds, frac = divmod(ns, 10**9)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    text = f"{secs}"
    if frac:
        text += ("." + f"{frac:09d}").rstrip("0")
    return out + text + "s"


def healthcheck_text(hc: Healthcheck) -> str:
    """What `HEALTHCHECK %q` of Docker's struct prints (the classic builder's history text)."""
    return (f"HEALTHCHECK &{{{go_quote(hc.test)} {json.dumps(go_duration(hc.interval))} "
            f"{json.dumps(go_duration(hc.timeout))} {json.dumps(go_duration(hc.start_period))} "
            f"'\\x{hc.retries:02x}'}}")   # dockerd 20.10's HealthConfig has no StartInterval


def run_created_by(cmd: Sequence[str], args_in_scope: Sequence[str]) -> str:
    prefix = f"|{len(args_in_scope)} " + " ".join(args_in_scope) + " " if args_in_scope else ""
    return prefix + " ".join(cmd)


@dataclass(slots=True)
class ArgScope:
    """The build args a stage can see: its own ARG declarations (and the predefined proxy args) with the
    values --build-arg gives them, else their defaults."""
    given: Mapping[str, str | None]
    global_defaults: Mapping[str, str | None]
    declared: dict[str, str | None] = field(default_factory=dict)

    def declare(self, name: str, default: str | None) -> None:
        if name in self.given and self.given[name] is not None:
            self.declared[name] = self.given[name]
        elif default is not None:
            self.declared[name] = default
        else:
            self.declared[name] = self.global_defaults.get(name)

    def values(self) -> dict[str, str]:
        """Every arg with a value the stage may use: declared ones and given proxy args."""
        out = {k: v for k, v in self.given.items() if k in PROXY_ARGS and v is not None}
        out.update({k: v for k, v in self.declared.items() if v is not None})
        return out

    def for_history(self, env: Sequence[str]) -> list[str]:
        """`k=v` of the args a RUN sees that ENV does not override, proxies only when declared, sorted."""
        env_keys = {e.partition("=")[0] for e in env}
        return sorted(f"{k}={v}" for k, v in self.values().items()
                      if k not in env_keys and (k not in PROXY_ARGS or k in self.declared))

    def for_run(self, env: Sequence[str]) -> list[str]:
        env_keys = {e.partition("=")[0] for e in env}
        return [f"{k}={v}" for k, v in self.values().items() if k not in env_keys]


def set_env(env: Sequence[str], key: str, value: str) -> tuple[str, ...]:
    """Docker's ENV update: an existing variable is replaced where it stands, a new one appended."""
    out = list(env)
    for i, item in enumerate(out):
        if item.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return tuple(out)
    return (*out, f"{key}={value}")


def expansion_env(env: Sequence[str], args: ArgScope) -> dict[str, str]:
    """What `$name` means in an instruction: build args, with ENV taking precedence."""
    out = dict(args.values())
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def parse_duration_ns(text: str, what: str) -> int:
    """Go's time.ParseDuration for the HEALTHCHECK flags (e.g. 30s, 1m30s, 500ms)."""
    units = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    rest = text.strip()
    if rest == "0":
        return 0
    total = 0.0
    if not rest:
        raise InvalidArgument(f"invalid {what} duration {text!r}")
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        if i == 0:
            raise InvalidArgument(f"invalid {what} duration {text!r}")
        number = float(rest[:i])
        rest = rest[i:]
        for unit in ("ns", "us", "µs", "ms", "s", "m", "h"):
            if rest.startswith(unit) and not (unit in ("m",) and rest.startswith("ms")):
                total += number * units[unit]
                rest = rest[len(unit):]
                break
        else:
            raise InvalidArgument(f"invalid {what} duration {text!r}: missing unit")
    return int(total)


def normalise_port(spec: str) -> list[str]:
    """EXPOSE's port[/proto] and port ranges, as ExposedPorts keys (80 -> 80/tcp)."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    lo, _, hi = port.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise InvalidArgument(f"invalid containerPort: {port}")
    if not hi:
        return [f"{int(lo)}/{proto}"]
    if int(hi) < int(lo):
        raise InvalidArgument(f"invalid port range: {port}")
    return [f"{p}/{proto}" for p in range(int(lo), int(hi) + 1)]


def config_key(config: ContainerConfig) -> str:
    return json.dumps(config.to_json(), sort_keys=True)


def container_config(config: ContainerConfig, created_by: str) -> dict[str, object]:
    """Docker's legacy container_config of a build step: the config with the step's command as Cmd."""
    out: dict[str, Any] = {"Hostname": "", "Domainname": "", "User": config.user, "AttachStdin": False,
                           "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
                           "StdinOnce": False, "Env": list(config.env) or None,
                           "Cmd": ["/bin/sh", "-c", created_by.removeprefix("/bin/sh -c ")],
                           "Image": "", "Volumes": {v: {} for v in config.volumes} or None,
                           "WorkingDir": config.working_dir, "Entrypoint": list(config.entrypoint)
                           if config.entrypoint is not None else None, "OnBuild": list(config.on_build) or None,
                           "Labels": dict(config.labels) or None}
    return out
