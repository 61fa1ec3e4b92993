"""The log replay of `POST /containers/{id}/attach?logs=1`: what the container wrote so far, from its json-file
log, in the attach stream's form (Docker's frames, or raw bytes for a tty).

May import: berth.api.streams, berth.engine, berth.errors.
"""

from __future__ import annotations

import json
from pathlib import Path

from berth.api.streams import frame
from berth.engine.lifecycle import iter_log


def log_replay(path: Path, stdout: bool, stderr: bool, tty: bool) -> bytes:
    want = {name for name, chosen in (("stdout", stdout), ("stderr", stderr)) if chosen}
    out = bytearray()
    for line in iter_log(path):
        try:
            entry = json.loads(line)
        except ValueError:
            continue            # a line cut short by a crash of the monitor
        if not isinstance(entry, dict) or entry.get("stream") not in want:
            continue
        data = str(entry.get("log", "")).encode()
        out += data if tty else frame(entry["stream"], data)
    return bytes(out)
