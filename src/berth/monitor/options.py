"""The monitor's command line, parsed once into a MonitorOptions record (and rendered back by `to_argv`).

No argparse: it imports `re` and `gettext`, milliseconds on every container start. May import: berth.oci.record,
berth.errors.
"""

from __future__ import annotations

from berth.errors import InvalidArgument
from berth.oci.record import record

RUNTIMES = ("berth", "runc", "crun")

_VALUED = {"--id": "container_id", "--bundle": "bundle", "--state-root": "state_root", "--dir": "container_dir",
           "--socket": "socket", "--log-max-size": "log_max_size", "--log-max-file": "log_max_file",
           "--runtime": "runtime", "--ready-fd": "ready_fd"}
_FLAGS = {"--tty": "tty", "--stdin": "stdin", "--stdin-once": "stdin_once"}
_REQUIRED = ("--id", "--bundle", "--state-root", "--dir", "--socket")


@record
class MonitorOptions:
    """Everything one monitor needs: which container, where its files go, and how its stdio is set up.

    log_max_size -1 means no rotation (Docker's default); log_max_file counts the live file too (Docker's
    max-file). runtime is "berth" (in-process), "runc", "crun" or the path of a runc-compatible binary.
    ready_fd is internal: the pipe on which `spawn` waits for "ready" or the create error.
    """
    container_id: str
    bundle: str
    state_root: str
    container_dir: str
    socket: str
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    log_max_size: int = -1
    log_max_file: int = 1
    runtime: str = "berth"
    ready_fd: int = -1

    def __post_init__(self) -> None:
        if self.log_max_size == 0 or self.log_max_size < -1:
            raise InvalidArgument(f"log max-size must be positive (or -1 for no limit), not {self.log_max_size}")
        if self.log_max_file < 1:
            raise InvalidArgument(f"log max-file must be at least 1, not {self.log_max_file}")
        if not self.runtime:
            raise InvalidArgument("--runtime needs a name (berth, runc, crun) or the path of a runtime binary")
        if self.runtime not in RUNTIMES and not self.runtime.startswith("/"):
            raise InvalidArgument(f"unknown runtime {self.runtime!r}: use berth, runc, crun or an absolute path")
        for name in ("container_id", "bundle", "state_root", "container_dir", "socket"):
            if not getattr(self, name):
                raise InvalidArgument(f"monitor option {name} is empty")
        if self.stdin_once and not self.stdin:
            raise InvalidArgument("--stdin-once needs --stdin")

    @property
    def log_path(self) -> str:
        return f"{self.container_dir}/{self.container_id}-json.log"

    def to_argv(self) -> list[str]:
        argv = ["--id", self.container_id, "--bundle", self.bundle, "--state-root", self.state_root,
                "--dir", self.container_dir, "--socket", self.socket]
        argv += [flag for flag, name in _FLAGS.items() if getattr(self, name)]
        if self.log_max_size != -1:
            argv += ["--log-max-size", str(self.log_max_size)]
        if self.log_max_file != 1:
            argv += ["--log-max-file", str(self.log_max_file)]
        if self.runtime != "berth":
            argv += ["--runtime", self.runtime]
        if self.ready_fd >= 0:
            argv += ["--ready-fd", str(self.ready_fd)]
        return argv


def _int(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise InvalidArgument(f"{flag} expects an integer, not {text!r}") from exc


def parse_args(argv: list[str]) -> MonitorOptions:
    values: dict[str, object] = {}
    seen: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, inline = arg.partition("=")
        if flag in _FLAGS and not eq:
            values[_FLAGS[flag]] = True
        elif flag in _VALUED:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument(f"{flag} needs a value")
                inline = argv[i]
            name = _VALUED[flag]
            numeric = name in ("log_max_size", "log_max_file", "ready_fd")
            values[name] = _int(flag, inline) if numeric else inline
        else:
            raise InvalidArgument(f"unknown monitor option {arg!r}")
        seen.add(flag)
        i += 1
    missing = [f for f in _REQUIRED if f not in seen]
    if missing:
        raise InvalidArgument(f"missing monitor option{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    return MonitorOptions(**values)  # type: ignore[arg-type]
