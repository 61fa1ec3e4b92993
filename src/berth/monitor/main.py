"""`python -m berth.monitor ...`: parse the options, prepare the container, say "ready" (or why not) to the
spawner, then serve until the container is gone.

The ready pipe (--ready-fd) carries one line: "OK <monitor pid> <init pid>" or "E<error kind>\\t<message>";
after an error it is closed only by the exit, so that the spawner can wait for the monitor to be gone.
May import: berth.runtime, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import sys

from berth.errors import BerthError
from berth.monitor.options import parse_args


def _close_inherited(keep: int) -> None:
    """The monitor outlives whoever started it: hold none of its fds (its sockets, its locks)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory fd listdir used, closed already


def _name_process() -> None:
    """`berth-monitor` in ps and /proc/<pid>/comm, rather than python (or the zygote it was forked from)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("berth-monitor")
    except OSError:
        pass


def _say(fd: int, line: str) -> None:
    if fd < 0:
        if line.startswith("E"):
            sys.stderr.write(f"berth-monitor: {line[1:].partition(chr(9))[2]}")
        return
    try:
        os.write(fd, line.encode())
    except OSError:
        pass  # the spawner is gone; the engine will find the container through its socket or files
    if line.startswith("OK"):
        os.close(fd)  # after an error the fd stays open until exit: the spawner's EOF then means "gone"


def main(argv: list[str]) -> int:
    ready = -1
    try:
        opts = parse_args(argv)
        ready = opts.ready_fd
        _close_inherited(ready)
        _name_process()
        from berth.monitor.server import Monitor

        monitor = Monitor(opts)
        monitor.prepare()
    except (BerthError, OSError) as exc:
        kind = type(exc).__name__ if isinstance(exc, BerthError) else "RuntimeFailure"
        message = str(exc).replace("\n", " ") or kind
        _say(ready, f"E{kind}\t{message}\n")
        return 1
    _say(ready, f"OK {os.getpid()} {monitor.pid}\n")
    return monitor.run()
