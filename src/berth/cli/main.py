"""The `berth` command: docker's syntax, output and exit codes, as a thin client over the Engine API.

Parsing is two-step like docker's: global flags (-H, -D, -l, --version) up to the command word, then the
command's own flags, which may come before or after its arguments (intermixed). Exit codes come from one table
(EXIT_CODES): flag errors 125, argument-count errors and every daemon or I/O error 1, template errors 64 where
docker says so, Ctrl-C 130.

May import: the standard library, berth.cli.*, berth.client, berth.errors. Never berth.engine or berth.api:
this module is on every CLI call's import path, which must stay cheap.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from berth import __version__
from berth.cli.context import Ctx, UsageError
from berth.cli.ctable import register as _register_container_commands
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses cost ~25 ms of imports per call: only mypy reads this
    from typing import NoReturn

PROG = "berth"
BERTH_VERSION = __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Flag errors as cobra words them, with the usage line after (exit 125)."""
        if message.startswith("unrecognized arguments:"):
            flag = message.split(":", 1)[1].strip().split()[0]
            if flag.startswith("--"):
                message = f"unknown flag: {flag.partition('=')[0]}"
            elif flag.startswith("-"):
                message = f"unknown shorthand flag: {flag[1:2]!r} in {flag}"
            else:
                message = f"unexpected argument: {flag}"
        elif message.startswith("argument "):
            names, _, detail = message.removeprefix("argument ").partition(": ")
            if detail == "expected one argument":
                message = f"flag needs an argument: {names.split('/')[-1]}"
            elif "\0" in detail:  # a value type's error carrying the value: 'VALUE\0detail' (cli/createopts)
                value, _, why = detail.partition("\0")
                message = f'invalid argument "{value}" for "{names.replace("/", ", ")}" flag: {why}'
            else:
                message = f'invalid argument for "{names.replace("/", ", ")}" flag: {detail}'
        raise UsageError(f"{message}\n\nUsage:  {self.usage}\n\nRun '{self.prog} --help' for more information")


class Command:
    """A command's usage line, summary, flag setup, handler, and how many positionals it takes."""

    __slots__ = ("usage", "summary", "setup", "run", "positional", "nargs", "interspersed")

    def __init__(self, usage: str, summary: str, setup: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[Ctx, argparse.Namespace], int], positional: str = "",
                 nargs: tuple[int, int | None] = (0, 0), interspersed: bool = True) -> None:
        self.usage, self.summary, self.setup, self.run = usage, summary, setup, run
        self.positional = positional  # dest of the positional list, checked against nargs
        self.nargs = nargs
        self.interspersed = interspersed  # False: flags stop at the first argument (run IMAGE CMD -flags...)


def _lazy(module: str, name: str) -> Callable[[Ctx, argparse.Namespace], int]:
    """Import a command's module only when that command runs."""
    def run(ctx: Ctx, a: argparse.Namespace) -> int:
        mod = __import__(f"berth.cli.{module}", fromlist=[name])
        fn: Callable[[Ctx, argparse.Namespace], int] = getattr(mod, name)
        return fn(ctx, a)
    return run


# ---- command definitions --------------------------------------------------------------------------------------

def _images(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--format", default="", help="Format output using a custom template ('table', 'json', "
                   "'table TEMPLATE', or a Go template)")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("repository", nargs="*", metavar="REPOSITORY[:TAG]")


def _inspect_image(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template ('json' or a Go "
                   "template)")
    p.add_argument("names", nargs="*", metavar="IMAGE")


def _inspect_any(p: argparse.ArgumentParser) -> None:
    _inspect_image(p)
    p.add_argument("--type", choices=("container", "image", "network", "volume"), help="Return JSON for specified "
                   "type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")


def _history(p: argparse.ArgumentParser) -> None:
    p.add_argument("-H", "--human", type=_bool, nargs="?", const=True, default=True,
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("--format", default="", help="Format output using a custom template")
    p.add_argument("image", nargs="*", metavar="IMAGE")


def _tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")


def _rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="*", metavar="IMAGE")


def _save(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    p.add_argument("images", nargs="*", metavar="IMAGE")


def _load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", default="", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def _import(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the "
                   "created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", default="", help="Set platform if server is multi-platform capable")
    p.add_argument("args", nargs="*", metavar="file|URL|- [REPOSITORY[:TAG]]")


def _prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")


def _bootstrap(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", default="", help="Name and tag for the image (default: the base's name)")
    p.add_argument("bases", nargs="*", metavar="busybox|debian:bookworm")


def _format_only(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default="", help="Format output using a custom template")


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f'invalid argument "{text}": strconv.ParseBool: parsing "{text}": '
                                     "invalid syntax")


def _run_tag(ctx: Ctx, a: argparse.Namespace) -> int:
    a.source, a.target = a.args
    return _lazy("images", "run_tag")(ctx, a)


def _run_history(ctx: Ctx, a: argparse.Namespace) -> int:
    a.image = a.image[0]
    return _lazy("images", "run_history")(ctx, a)


def _run_import(ctx: Ctx, a: argparse.Namespace) -> int:
    a.file = a.args[0]
    a.reference = a.args[1] if len(a.args) > 1 else ""
    return _lazy("images", "run_import")(ctx, a)


def _run_bootstrap(ctx: Ctx, a: argparse.Namespace) -> int:
    a.base = a.bases[0]
    return _lazy("images", "run_bootstrap")(ctx, a)


IMAGES = Command("images [OPTIONS] [REPOSITORY[:TAG]]", "List images", _images, _lazy("images", "run_images"),
                 "repository", (0, 1))
IMAGE_INSPECT = Command("inspect [OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images",
                        _inspect_image, _lazy("images", "run_image_inspect"), "names", (1, None))
HISTORY = Command("history [OPTIONS] IMAGE", "Show the history of an image", _history, _run_history, "image", (1, 1))
TAG = Command("tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
              _tag, _run_tag, "args", (2, 2))
RMI = Command("rmi [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", _rmi, _lazy("images", "run_rmi"),
              "images", (1, None))
SAVE = Command("save [OPTIONS] IMAGE [IMAGE...]", "Save one or more images to a tar archive (streamed to STDOUT "
               "by default)", _save, _lazy("images", "run_save"), "images", (1, None))
LOAD = Command("load [OPTIONS]", "Load an image from a tar archive or STDIN", _load, _lazy("images", "run_load"))
IMPORT = Command("import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]", "Import the contents from a tarball to create "
                 "a filesystem image", _import, _run_import, "args", (1, 2))
PRUNE = Command("prune [OPTIONS]", "Remove unused images", _prune, _lazy("images", "run_prune"))
BOOTSTRAP = Command("bootstrap [OPTIONS] busybox|debian:bookworm", "Build a base image from packages on the "
                    "daemon's host (berth extension)", _bootstrap, _run_bootstrap, "bases", (1, 1))
INSPECT = Command("inspect [OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Docker objects",
                  _inspect_any, _lazy("images", "run_inspect"), "names", (1, None))
INFO = Command("info [OPTIONS]", "Display system-wide information", _format_only, _lazy("system", "run_info"))
VERSION = Command("version [OPTIONS]", "Show the berth version information", _format_only,
                  _lazy("system", "run_version"))

def _pull(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("--platform", default="", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("image", nargs="*")


def _push(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("--format", default="", choices=["", "docker", "oci"], help="Manifest format (berth extension)")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("image", nargs="*")


def _login(p: argparse.ArgumentParser) -> None:
    p.add_argument("-u", "--username", default="", help="Username")
    p.add_argument("-p", "--password", default="", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("server", nargs="*")


def _logout(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", nargs="*")


PULL = Command("pull [OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", _pull,
               _lazy("registry", "run_pull"), "image", (1, 1))
PUSH = Command("push [OPTIONS] NAME[:TAG]", "Upload an image to a registry", _push, _lazy("registry", "run_push"),
               "image", (1, 1))
LOGIN = Command("login [OPTIONS] [SERVER]", "Log in to a registry", _login, _lazy("registry", "run_login"),
                "server", (0, 1))
LOGOUT = Command("logout [SERVER]", "Log out from a registry", _logout, _lazy("registry", "run_logout"),
                 "server", (0, 1))

TOP: dict[str, Command] = {
    "pull": PULL, "push": PUSH, "login": LOGIN, "logout": LOGOUT,
    "images": IMAGES, "inspect": INSPECT, "history": HISTORY, "tag": TAG, "rmi": RMI, "save": SAVE, "load": LOAD,
    "import": IMPORT, "info": INFO, "version": VERSION,
}
GROUPS: dict[str, dict[str, Command]] = {
    "image": {"ls": IMAGES, "list": IMAGES, "inspect": IMAGE_INSPECT, "history": HISTORY, "tag": TAG, "rm": RMI,
              "remove": RMI, "save": SAVE, "load": LOAD, "import": IMPORT, "prune": PRUNE, "bootstrap": BOOTSTRAP},
    "system": {"info": INFO},
}
_register_container_commands(TOP, GROUPS, Command, _lazy)
TOP["build"] = GROUPS["image"]["build"] = Command(  # flags and code in berth.cli.build, imported when it runs
    "build [OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
    lambda p: __import__("berth.cli.build", fromlist=["setup"]).setup(p), _lazy("build", "run_build"), "context", (1, 1))


# ---- dispatch -------------------------------------------------------------------------------------------------

def _global_parser() -> _Parser:
    p = _Parser(prog=PROG, add_help=False, usage=f"{PROG} [OPTIONS] COMMAND",
                description="A Docker-compatible container engine")
    p.add_argument("-H", "--host", action="append", default=[], help="Daemon socket to connect to")
    p.add_argument("-D", "--debug", action="store_true", help="Enable debug mode")
    p.add_argument("-l", "--log-level", default="info", help="Set the logging level")
    p.add_argument("--config", default="", help="Location of client config files")
    p.add_argument("-v", "--version", action="store_true", help="Print version information and quit")
    p.add_argument("-h", "--help", action="store_true", help="Print usage")
    return p


def _split_global(argv: list[str]) -> tuple[list[str], list[str]]:
    """Global flags are those before the first word that is not a flag or a flag's value."""
    takes_value = {"-H", "--host", "-l", "--log-level", "--config"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        if arg in takes_value:
            i += 1
        i += 1
    return argv[:i], argv[i:]


def _overview() -> str:
    lines = [f"Usage:  {PROG} [OPTIONS] COMMAND", "", "A Docker-compatible container engine", "", "Commands:"]
    for name, cmd in TOP.items():
        lines.append(f"  {name:<10}{cmd.summary}")
    lines += ["", "Management Commands:", "  container Manage containers", "  image     Manage images",
              "  network   Manage networks", "  system    Manage berth", "  volume    Manage volumes", "",
              "  registry  Run berth's registry server (serve, gc)", "",
              f"Run '{PROG} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _group_help(group: str) -> str:
    lines = [f"Usage:  {PROG} {group} COMMAND", "", "Commands:"]
    seen = set()
    width = max(10, max(len(name) for name in GROUPS[group]) + 2)
    for name, cmd in GROUPS[group].items():
        if id(cmd) in seen:
            continue
        seen.add(id(cmd))
        lines.append(f"  {name:<{width}}{cmd.summary}")
    return "\n".join(lines) + "\n"


def _run(argv: list[str], ctx_factory: Callable[[str | None], Ctx], out: Callable[[str], None]) -> int:
    global_args, rest = _split_global(argv)
    g = _global_parser().parse_args(global_args)
    if g.version:
        out(f"berth version {BERTH_VERSION}\n")
        return 0
    if g.help or not rest:
        out(_overview())
        return 0
    word, rest = rest[0], rest[1:]
    if word == "registry":   # berth's registry server is its own program
        from berth.cli.registry import run_registry
        return run_registry(rest)
    called_as = word
    if word in GROUPS:
        if not rest or rest[0] in ("-h", "--help"):
            out(_group_help(word))
            return 0
        sub, rest = rest[0], rest[1:]
        cmd = GROUPS[word].get(sub)
        if cmd is None:
            raise UsageError(f"{PROG}: unknown command: {PROG} {word} {sub}\n\nRun '{PROG} {word} --help' for more "
                             "information", exit_code=1)
        prog = f"{PROG} {word} {sub}"
        called_as = sub
    else:
        found = TOP.get(word)
        if found is None:
            raise UsageError(f"{PROG}: unknown command: {PROG} {word}\n\nRun '{PROG} --help' for more information",
                             exit_code=1)
        cmd, prog = found, f"{PROG} {word}"
    parser = _Parser(prog=prog, usage=f"{PROG} {cmd.usage}", description=cmd.summary)
    cmd.setup(parser)
    a = parser.parse_intermixed_args(rest) if cmd.interspersed else parser.parse_args(rest)
    a.called_as = called_as
    if cmd.positional:
        n = len(getattr(a, cmd.positional))
        lo, hi = cmd.nargs
        if n < lo or (hi is not None and n > hi):
            verb = "See" if hi is None else "Run"   # docker's RequiresMinArgs says "See", the others "Run"
            raise UsageError(_count_message(prog, lo, hi) + f"\n\nUsage:  {PROG} {cmd.usage}\n\n"
                             f"{verb} '{prog} --help' for more information", exit_code=1)
    ctx = ctx_factory(g.host[-1] if g.host else None)
    try:
        return cmd.run(ctx, a)
    except UsageError as exc:
        if not exc.usage:
            raise
        raise UsageError(f"{exc}\n\nUsage:  {PROG} {cmd.usage}\n\nRun '{prog} --help' for more information",
                         exc.exit_code) from exc
    finally:
        ctx.close()


def _count_message(prog: str, lo: int, hi: int | None) -> str:
    def noun(n: int) -> str:
        return "argument" if n == 1 else "arguments"
    if hi == lo:
        return f"{PROG}: '{prog}' requires {lo} {noun(lo)}"
    if hi is None:
        return f"{PROG}: '{prog}' requires at least {lo} {noun(lo)}"
    if lo == 0:
        return f"{PROG}: '{prog}' requires at most {hi} {noun(hi)}"
    return f"{PROG}: '{prog}' requires at least {lo} and at most {hi} {noun(hi)}"


def exit_code(err: BaseException) -> int:
    """The one table from errors to exit codes."""
    code = getattr(err, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(err, KeyboardInterrupt):
        return 130
    return 1


def error_text(err: BaseException) -> str:
    from berth.client.transport import from_daemon

    status = from_daemon(err)
    if status is not None:
        return f"Error response from daemon: {status.message}"
    return str(err)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ

    def make_ctx(flag: str | None) -> Ctx:
        from berth.client.hosts import resolve_host

        return Ctx(resolve_host(flag, env), env)

    try:
        return _run(args, make_ctx, lambda text: print(text, end=""))
    except BrokenPipeError:
        return 1
    except (BerthError, OSError) as exc:
        sys.stdout.flush()
        sys.stderr.write(error_text(exc).rstrip("\n") + "\n")
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
