"""Progress of a pull or push, as events. The Engine API renders them as Docker's JSON lines, the CLI as bars.

The step names are Docker's own words, since both renderings show them as they are.
May import: berth.errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    PULLING_FS_LAYER = "Pulling fs layer"
    WAITING = "Waiting"
    DOWNLOADING = "Downloading"
    VERIFYING = "Verifying Checksum"
    DOWNLOAD_COMPLETE = "Download complete"
    ALREADY_EXISTS = "Already exists"
    EXTRACTING = "Extracting"
    PULL_COMPLETE = "Pull complete"
    PREPARING = "Preparing"
    PUSHING = "Pushing"
    PUSHED = "Pushed"
    LAYER_EXISTS = "Layer already exists"
    MOUNTED = "Mounted from"


@dataclass(frozen=True, slots=True)
class Progress:
    step: Step
    id: str                   # the 12-hex short form of the blob digest
    current: int | None = None
    total: int | None = None
    detail: str = ""          # e.g. the repository a layer was mounted from

    @property
    def status(self) -> str:
        return f"{self.step} {self.detail}" if self.detail else str(self.step)


ProgressSink = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """A sink for callers that show no progress."""
