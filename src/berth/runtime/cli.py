"""`berth-runtime`: a runc-compatible command line over berth.runtime.api.

Global flags (before the command): --root DIR (default /run/berth-runtime), --log FILE, --log-format text|json,
--debug; --systemd-cgroup and --criu are accepted and ignored, as runc users pass them. Exit codes follow runc: 0 on
success, 1 on any error (message on stderr and in --log), and `run` / `exec` in the foreground exit with the
process's own code (128+signal if it was killed). Kept import-light: the hot path is `run` / `create`.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import gc
import os
import sys
import time

# As the `berth-runtime` command, a short-lived process that allocates little: the cyclic GC would only run during
# the imports below. Imported as a module (tests, an engine), the host process keeps its GC.
if sys.argv and sys.argv[0].endswith("berth-runtime"):
    gc.disable()

from berth.errors import BerthError, InvalidArgument  # noqa: E402
from berth.runtime import commands  # noqa: E402

USAGE = """usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ID
commands: create start run state kill delete exec pause resume ps list spec"""

# option name -> takes a value; per command
_FLAGS: dict[str, dict[str, bool]] = {
    "create": {"bundle": True, "b": True, "pid-file": True, "console-socket": True, "no-pivot": False,
               "no-new-keyring": False, "preserve-fds": True},
    "run": {"bundle": True, "b": True, "pid-file": True, "console-socket": True, "detach": False, "d": False,
            "no-pivot": False, "no-new-keyring": False, "preserve-fds": True, "keep": False},
    "start": {}, "state": {}, "pause": {}, "resume": {},
    "kill": {"all": False, "a": False},
    "delete": {"force": False, "f": False},
    "exec": {"process": True, "p": True, "console-socket": True, "pid-file": True, "detach": False, "d": False,
             "tty": False, "t": False, "cwd": True, "env": True, "e": True, "user": True, "u": True,
             "cap": True, "c": True, "no-new-privs": False, "additional-gids": True, "g": True,
             "preserve-fds": True},
    "ps": {"format": True, "f": True},
    "list": {"format": True, "f": True, "quiet": False, "q": False},
    "spec": {"bundle": True, "b": True, "rootless": False},
}
_ALIASES = {"b": "bundle", "d": "detach", "a": "all", "f": "force", "p": "process", "t": "tty", "e": "env",
            "u": "user", "c": "cap", "g": "additional-gids", "q": "quiet"}


class Options:
    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.args: list[str] = []

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.values.get(name)
        return v[-1] if v else default

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def flag(self, name: str) -> bool:
        v = self.get(name)
        return v is not None and v not in ("false", "0")


def _parse(argv: list[str], known: dict[str, bool], command: str) -> Options:
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            opts.args.extend(argv[i + 1:])
            break
        if arg.startswith("-") and arg != "-" and not opts.args:
            name, eq, value = arg.lstrip("-").partition("=")
            if name not in known:
                raise InvalidArgument(f"{command}: unknown option {arg} (see berth-runtime --help)")
            if known[name] and not eq:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument(f"{command}: option {arg} needs a value")
                value = argv[i]
            elif not known[name]:
                value = value or "true"
            opts.values.setdefault(_ALIASES.get(name, name), []).append(value)
        else:
            opts.args.append(arg)
        i += 1
    return opts


class Logger:
    def __init__(self, path: str | None, fmt: str) -> None:
        self.path, self.fmt = path, fmt

    def error(self, message: str) -> None:
        sys.stderr.write(f"berth-runtime: {message}\n")
        if self.path:
            if self.fmt == "json":
                import json  # error path only: `json` imports `re`, which the start path avoids

                line = json.dumps({"level": "error", "msg": message,
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            else:
                line = f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" level=error msg="{message}"'
            try:
                with open(self.path, "a") as f:
                    f.write(line + "\n")
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code. Called as the console script it never returns (see _exit)."""
    code = _main(argv)
    if argv is None:
        # The console script: skip the interpreter's teardown (module and GC finalisation costs milliseconds on
        # every `run`); nothing of ours needs it once stdio is flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root, log, log_format = "/run/berth-runtime", None, "text"
    while args and args[0].startswith("-"):
        name, eq, value = args.pop(0).lstrip("-").partition("=")
        if name in ("help", "h"):
            print(USAGE)
            return 0
        if name in ("version", "v"):
            print("berth-runtime version 0.1.0\nspec: 1.0.2")
            return 0
        if name in ("root", "log", "log-format", "criu", "rootless"):
            if not eq:
                if not args:
                    sys.stderr.write(f"berth-runtime: --{name} needs a value\n")
                    return 1
                value = args.pop(0)
            if name == "root":
                root = value
            elif name == "log":
                log = value
            elif name == "log-format":
                log_format = value
        elif name in ("debug", "systemd-cgroup"):
            continue
        else:
            sys.stderr.write(f"berth-runtime: unknown global option --{name}\n{USAGE}\n")
            return 1
    logger = Logger(log, log_format)
    if not args:
        sys.stderr.write(USAGE + "\n")
        return 1
    command = args.pop(0)
    if command not in _FLAGS:
        logger.error(f"unknown command {command!r}\n{USAGE}")
        return 1
    try:
        opts = _parse(args, _FLAGS[command], command)
        return commands.dispatch(command, opts, root)
    except BerthError as exc:
        logger.error(str(exc))
        return 1
    except OSError as exc:
        logger.error(f"{command}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
