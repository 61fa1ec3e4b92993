"""Overlay mount descriptions (pure) and the one function that carries them out.

mount(2) takes its options in one page (4096 bytes). An image of ~120 layers with absolute
lowerdir paths would not fit, so the snapshotter names its directories with short ids and
describes mounts with paths *relative to the snapshot root* (`12/fs:11/fs`), plus the directory
they are relative to (`Mount.cwd`). This is Docker overlay2's trick (its short `l/` links,
resolved after changing directory); berth does the chdir in a short-lived thread that first
unshares its filesystem attributes (unshare(CLONE_FS)), so the process's own working directory
never changes and no child process is needed.

May import: berth.util, berth.errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from berth.errors import LimitExceeded
from berth.util import linux

PAGE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Mount:
    type: str                       # "overlay" or "bind"
    source: str
    options: tuple[str, ...] = ()
    cwd: Path | None = None         # relative paths in source and options are resolved from here

    def data(self) -> str:
        """The mount(2) data string (filesystem options, without the bind flags)."""
        return ",".join(o for o in self.options if o not in ("rbind", "bind", "rw", "ro"))

    def absolute(self) -> Mount:
        """The same mount with absolute paths (for peers that cannot chdir, e.g. a runc config.json)."""
        if self.cwd is None:
            return self
        base = self.cwd

        def fix(path: str) -> str:
            return path if path.startswith("/") else str(base / path)

        options = []
        for opt in self.options:
            key, sep, value = opt.partition("=")
            if sep and key in ("lowerdir", "upperdir", "workdir"):
                value = ":".join(fix(p) for p in value.split(":"))
                opt = f"{key}={value}"
            options.append(opt)
        source = fix(self.source) if self.type == "bind" else self.source
        return Mount(self.type, source, tuple(options), None)


def overlay_mounts(lowers: Sequence[str], upper: str | None, work: str | None, cwd: Path) -> list[Mount]:
    """The mounts of a snapshot: lowers top-most first, as overlayfs expects; paths relative to cwd.

    No lowers: the upper directory itself, bind-mounted. No upper: a read-only view (a single
    lower is bind-mounted read-only, since overlayfs needs two lowers without an upper).
    """
    if not lowers:
        if upper is None:
            raise ValueError("a snapshot needs a lower or an upper directory")
        return [Mount("bind", upper, ("rbind", "rw"), cwd)]
    if upper is None:
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], ("rbind", "ro"), cwd)]
        options: tuple[str, ...] = ("lowerdir=" + ":".join(lowers),)
    else:
        # redirect_dir and metacopy off: an upper directory must hold whole copies of what changed,
        # or berth.snapshots.diff could not turn it into a layer.
        options = ("lowerdir=" + ":".join(lowers), f"upperdir={upper}", f"workdir={work}",
                   "redirect_dir=off", "metacopy=off")
    mount = Mount("overlay", "overlay", options, cwd)
    if len(mount.data()) >= PAGE_LIMIT:
        raise LimitExceeded(f"overlay mount options of {len(lowers)} layers take {len(mount.data())} bytes, "
                            f"over the kernel's limit of {PAGE_LIMIT}")
    return [mount]


def apply_mount(m: Mount, target: Path) -> None:
    """Carry out one Mount at target (an existing directory). Raises OSError naming the call."""
    dest = str(Path(target).absolute())
    if m.type == "bind":
        flags = linux.MS_BIND | (linux.MS_REC if "rbind" in m.options else 0)

        def do() -> None:
            linux.mount(m.source, dest, None, flags)
            if "ro" in m.options:
                linux.mount("none", dest, None, flags | linux.MS_REMOUNT | linux.MS_RDONLY)
    else:
        def do() -> None:
            linux.mount(m.source, dest, m.type, 0, m.data())
    if m.cwd is None:
        do()
    else:
        _in_directory(m.cwd, do)


def _in_directory(cwd: Path, action: Callable[[], None]) -> None:
    """Run action with cwd as the working directory of one thread that owns its own cwd."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            linux.unshare(linux.CLONE_FS)      # from here on, chdir affects this thread only
            os.chdir(cwd)
            action()
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=run, name="berth-mount")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def unmount(target: Path, detach: bool = False) -> None:
    linux.umount(str(target), linux.MNT_DETACH if detach else 0)
