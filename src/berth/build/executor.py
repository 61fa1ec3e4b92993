"""What the builder needs from the engine to run a RUN step: a container of the step's parent image that runs
to completion, with its output streamed. The engine (berth.api.build assembles it) implements this Protocol;
build sits below the engine in the layering, so it names the seam instead of importing the engine.

May import: berth.oci, berth.errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from berth.errors import RuntimeFailure, Unavailable
from berth.oci.digest import Digest


class BuildCancelled(Unavailable):
    """The client went away: the build stops at once, leaving nothing of the step that ran."""


class StepFailed(RuntimeFailure):
    """A RUN step's command exited non-zero (Docker's message, and its exit code for errorDetail.code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class RunStep:
    image: Digest                     # the step's parent image
    args: tuple[str, ...]             # the full command line (shell + command, or the exec form)
    env: tuple[str, ...]              # the image's environment with the step's build args
    working_dir: str = ""
    user: str = ""
    network_mode: str = "default"     # default | host | none
    extra_hosts: tuple[str, ...] = ()
    shm_size: int = 0
    memory: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    container_id: str
    exit_code: int                    # the container's snapshot (key container_id) is unmounted by now


class StepRunner(Protocol):
    def run(self, step: RunStep, on_created: Callable[[str], None], on_output: Callable[[bytes], None],
            cancelled: Callable[[], bool] = lambda: False) -> RunOutcome:
        """Create a container for step, start it, stream its output, wait for its exit. When cancelled()
        turns true (the client went away) the container is killed and removed and BuildCancelled raised."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove the step's container (and whatever of its snapshot was not committed)."""
        ...


class BaseImages(Protocol):
    def pull(self, name: str, platform: str, on_progress: Callable[[dict[str, object]], None]) -> None:
        """Pull name so that it becomes a local image (FROM a missing image, or --pull)."""
        ...
