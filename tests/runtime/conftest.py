"""Fixtures for the runtime tests: a busybox rootfs, bundles, a private state root, and leak checks.

Every container a test makes is force-deleted at teardown, and the teardown then asserts that nothing is left: no
state directory, no cgroup directory named after the container, no mount of the rootfs in the host's mount table.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from berth.runtime.cgroups import open_cgroup

BUSYBOX = "/bin/busybox"
RUNTIME = [sys.executable, "-m", "berth.runtime.cli"]
PROBE_SOURCE = Path(__file__).with_name("probe.c")

PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n" \
         "alice:x:1000:1000:Alice:/home/alice:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ndaemon:x:1:\nwheel:x:10:root,alice\nusers:x:100:alice\nalice:x:1000:\nnogroup:x:65534:\n"


def make_rootfs(root: Path, probe: Path | None = None) -> Path:
    """A busybox rootfs: the static binary, a link per applet, /etc/passwd and /etc/group."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/alice"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            (root / "bin" / name).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "tmp").chmod(0o1777)
    if probe is not None:
        shutil.copy2(probe, root / "bin" / "probe")
    return root


def default_config(args: list[str]) -> dict[str, Any]:
    """runc's `runc spec` example with terminal off (pipes) and the given args."""
    from berth.runtime.commands import default_spec

    cfg = default_spec()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"]["readonly"] = False
    return cfg


@dataclass
class Bundles:
    base: Path
    probe: Path | None
    made: list[Path] = field(default_factory=list)

    def make(self, args: list[str], *, name: str = "b", mutate: Any = None, rootfs: Path | None = None) -> Path:
        bundle = self.base / f"{name}-{len(self.made)}"
        bundle.mkdir()
        if rootfs is None:
            make_rootfs(bundle / "rootfs", self.probe)
        cfg = default_config(args)
        if rootfs is not None:
            cfg["root"]["path"] = str(rootfs)
        if mutate is not None:
            mutate(cfg)
        (bundle / "config.json").write_text(json.dumps(cfg, indent=1))
        self.made.append(bundle)
        return bundle

    def config(self, bundle: Path) -> dict[str, Any]:
        return copy.deepcopy(json.loads((bundle / "config.json").read_text()))


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A static test program that makes one raw syscall and prints the errno (see probe.c)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    out = tmp_path_factory.mktemp("probe") / "probe"
    proc = subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(PROBE_SOURCE)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return out


@pytest.fixture
def bundles(tmp_path: Path, probe_binary: Path | None) -> Bundles:
    return Bundles(tmp_path, probe_binary)


@dataclass
class Runtime:
    """One runtime command line (berth-runtime or runc) with its own --root."""
    argv: list[str]
    root: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
        # files, not pipes: a detached container keeps the stdio it inherited, and a pipe would never see EOF
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run([*self.argv, "--root", str(self.root), *args], stdout=out, stderr=err,
                                  input=input, timeout=timeout, text=True,
                                  stdin=None if input is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(), err.read().decode()
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def ids(self) -> list[str]:
        out = self("list", "--format", "json")
        return [c["id"] for c in (json.loads(out.stdout or "[]") or [])] if out.returncode == 0 else []

    def cleanup(self) -> None:
        for cid in self.ids():
            self("delete", "--force", cid)


def leftovers(root: Path, ids: list[str], rootfs_dirs: list[Path]) -> list[str]:
    """Anything a container left on the host: state dirs, cgroup dirs, mounts of its rootfs."""
    found = []
    for cid in ids:
        if (root / cid).exists():
            found.append(f"state dir {root / cid}")
        for d in open_cgroup(None, cid).dirs():
            if os.path.exists(d):
                found.append(f"cgroup {d}")
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for d in rootfs_dirs:
        if str(d) in mountinfo:
            found.append(f"mount under {d}")
    return found


@pytest.fixture
def berth(tmp_path: Path, bundles: Bundles) -> Iterator[Runtime]:
    rt = Runtime(list(RUNTIME), tmp_path / "berth-state")
    yield rt
    used = [p.name for p in rt.root.iterdir()] if rt.root.exists() else []
    rt.cleanup()
    left = leftovers(rt.root, used, [b / "rootfs" for b in bundles.made])
    assert not left, f"left behind: {left}"


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Runtime]:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt install runc)")
    rt = Runtime(["runc"], tmp_path / "runc-state")
    yield rt
    rt.cleanup()


def container_id(request: pytest.FixtureRequest, suffix: str = "") -> str:
    """A container id unique to the test (cgroup names are global on the host)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[-40:].strip("-")
    return f"bt-{os.getpid()}-{base}{suffix}"
