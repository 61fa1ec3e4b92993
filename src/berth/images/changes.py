"""`--change` instructions for import and commit: a Dockerfile instruction applied to an image's config.

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
May import: berth.oci, berth.errors.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace

from berth.errors import InvalidArgument
from berth.oci.config import ContainerConfig, Healthcheck

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")


def _json_or_shell(arg: str) -> tuple[str, ...]:
    text = arg.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    return ("/bin/sh", "-c", text)


def _pairs(arg: str, what: str) -> list[tuple[str, str]]:
    """`k=v k2="v 2"` or the legacy single `k v` form."""
    words = shlex.split(arg, posix=True)
    if not words:
        raise InvalidArgument(f"{what} needs at least one argument")
    if "=" not in words[0]:
        key, _, value = arg.strip().partition(" ")
        if not value.strip():
            raise InvalidArgument(f"{what} needs a value: {what} {key} <value> or {what} {key}=<value>")
        return [(key, value.strip())]
    out = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{what} {word!r}: expected key=value")
        out.append((key, value))
    return out


def _duration_ns(text: str) -> int:
    units = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return int(float(text[: -len(suffix)]) * units[suffix])
            except ValueError:
                break
    raise InvalidArgument(f"invalid duration {text!r}: use a number with a unit, e.g. 30s or 1m30s")


def apply_change(config: ContainerConfig, line: str) -> ContainerConfig:
    instruction, _, arg = line.strip().partition(" ")
    kind = instruction.upper()
    if kind not in ALLOWED:
        raise InvalidArgument(f"{instruction} is not a valid change command")
    arg = arg.strip()
    if kind == "CMD":
        return replace(config, cmd=_json_or_shell(arg))
    if kind == "ENTRYPOINT":
        return replace(config, entrypoint=_json_or_shell(arg))
    if kind == "ENV":
        for key, value in _pairs(arg, "ENV"):
            config = config.with_env(key, value)
        return config
    if kind == "LABEL":
        return replace(config, labels={**config.labels, **dict(_pairs(arg, "LABEL"))})
    if kind == "EXPOSE":
        ports = set(config.exposed_ports)
        for word in arg.split():
            port, _, proto = word.partition("/")
            if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                raise InvalidArgument(f"invalid port {word!r} in EXPOSE: expected PORT[/tcp|udp|sctp]")
            ports.add(f"{int(port)}/{proto or 'tcp'}")
        return replace(config, exposed_ports=tuple(sorted(ports)))
    if kind == "VOLUME":
        paths = list(_json_or_shell(arg)) if arg.startswith("[") else arg.split()
        if paths[:2] == ["/bin/sh", "-c"]:
            paths = arg.split()
        return replace(config, volumes=tuple(sorted(set(config.volumes) | set(paths))))
    if kind == "USER":
        return replace(config, user=arg)
    if kind == "WORKDIR":
        return replace(config, working_dir=arg if arg.startswith("/") else
                       f"{config.working_dir.rstrip('/')}/{arg}" if config.working_dir else f"/{arg}")
    if kind == "STOPSIGNAL":
        return replace(config, stop_signal=arg)
    if kind == "ONBUILD":
        return replace(config, on_build=config.on_build + (arg,))
    return replace(config, healthcheck=_healthcheck(arg))


def _healthcheck(arg: str) -> Healthcheck:
    words = arg.split()
    options: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        options[key] = value
    if not words:
        raise InvalidArgument("HEALTHCHECK needs NONE or CMD <command>")
    if words[0].upper() == "NONE":
        return Healthcheck(("NONE",))
    if words[0].upper() != "CMD":
        raise InvalidArgument("HEALTHCHECK needs NONE or CMD <command>")
    rest = arg[arg.upper().index("CMD") + 3:].strip()
    command = _json_or_shell(rest)
    test = ("CMD",) + command if rest.startswith("[") else ("CMD-SHELL", rest)
    return Healthcheck(test, _duration_ns(options["interval"]) if "interval" in options else 0,
                       _duration_ns(options["timeout"]) if "timeout" in options else 0,
                       _duration_ns(options["start-period"]) if "start-period" in options else 0,
                       _duration_ns(options["start-interval"]) if "start-interval" in options else 0,
                       int(options.get("retries", "0") or 0))
