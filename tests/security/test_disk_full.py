"""A data root that fills up (security-cases.md case 27; moby#10613, #32811, #12195): berthd --root on a 64 MiB
tmpfs the test mounts in its own temp dir. Loading an image bigger than that fails with a clear "no space"
error; no half image is listed, no partial blob or snapshot is left taking the space, the daemon still answers
/_ping and runs containers, and a smaller load succeeds afterwards. Images are real docker-archive tars of
random (incompressible) data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root, pytest.mark.slow]
TMPFS_MIB = 64


def image_archive(path: Path, tag: str, layer_mib: int) -> Path:
    """A docker-archive (`docker save` layout) with one layer holding layer_mib MiB of random bytes."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mode, info.mtime = layer_mib << 20, 0o644, 1_600_000_000
        tf.addfile(info, io.BytesIO(os.urandom(info.size)))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/payload.bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{"created_by": "test"}]},
                        separators=(",", ":")).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(path, mode="w") as out:
        for name, data in ((config_name, config), ("layer/layer.tar", layer_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            out.addfile(info, io.BytesIO(data))
    return path


def used_kib(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


@pytest.fixture
def small_root() -> Iterator[PrivateBerthd]:
    daemon = PrivateBerthd()
    daemon.root.mkdir(mode=0o710)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MIB}m,mode=0710", "berth-enospc", str(daemon.root)],
                   check=True)
    try:
        daemon.start()
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon
    finally:
        daemon.cleanup()          # stops berthd, unmounts everything under its dir (the tmpfs too), removes it
        assert not daemon.dir.exists() or not os.path.ismount(daemon.root)


def test_a_load_that_fills_the_disk_fails_cleanly_and_a_smaller_one_works_after(small_root: PrivateBerthd,
                                                                                 tmp_path: Path) -> None:
    b = small_root
    before = used_kib(b.root)
    big = image_archive(tmp_path / "big.tar", "huge:1", TMPFS_MIB + 16)
    proc = b.docker("load", "-i", str(big), check=False)
    assert proc.returncode != 0
    assert b"no space left on device" in proc.stderr.lower() or b"no space" in proc.stderr.lower(), proc.stderr
    assert b"Traceback" not in proc.stderr
    # nothing half-made: not listed, not inspectable, its partial blob and layer gone
    assert b"huge" not in b.docker("images", "-a").stdout
    assert b.docker("image", "inspect", "huge:1", check=False).returncode != 0
    assert used_kib(b.root) <= before + 2048, (before, used_kib(b.root))
    # the daemon is alive and working
    assert b.api("GET", "/_ping") == (200, b"OK")
    assert b.docker("run", "--rm", "busybox", "echo", "still here").stdout == b"still here\n"
    # and an image that fits loads and runs
    small = image_archive(tmp_path / "small.tar", "fits:1", 4)
    loaded = b.docker("load", "-i", str(small), check=False)
    assert loaded.returncode == 0 and b"Loaded image: fits:1" in loaded.stdout, loaded
    assert b"fits" in b.docker("images").stdout
    # a second failure after the first leaves the same clean state
    again = b.docker("load", "-i", str(big), check=False)
    assert again.returncode != 0 and b"huge" not in b.docker("images", "-a").stdout


def test_a_container_filling_the_disk_does_not_break_the_daemon(small_root: PrivateBerthd) -> None:
    """The container's own writes fill the data root: its output still reaches the attached client (the log
    entries are lost, as with dockerd), its exit is still recorded (each state directory keeps a small reserve
    for that), `docker run` returns its code, and removing the container gives the space back."""
    b = small_root
    later = b.docker("create", "--rm", "--name", "later", "busybox", "echo", "hi").stdout.decode().strip()
    proc = b.docker("run", "--name", "filler", "busybox", "sh", "-c",
                    f"head -c {TMPFS_MIB + 8}m /dev/zero > /fill; echo rc=$?", check=False)
    # the json log cannot take the output any more, but the attached client still gets it, and the exit code
    assert (proc.returncode, proc.stdout) == (0, b"rc=1\n"), proc
    assert os.statvfs(b.root).f_bavail == 0
    assert b.api("GET", "/_ping") == (200, b"OK")
    assert b.docker("inspect", "-f", "{{.State.Status}}", "filler").stdout.strip() == b"exited"
    # a new container cannot start on the full disk: a clear error, and --rm leaves nothing (the CLI waits for
    # the removal: a start that failed without applying --rm would hang it)
    refused = subprocess.run(["docker", "-H", b.host, "run", "--rm", "busybox", "echo", "hi"], capture_output=True,
                             timeout=60)
    assert refused.returncode != 0 and b"no space" in refused.stderr.lower(), refused
    # a --rm container made before the disk filled: its start fails cleanly and --rm removes it
    status, body = b.api("POST", f"/containers/{later}/start")
    assert status == 500 and b"No space left on device" in body and b"internal error" not in body, body
    assert b.docker("inspect", later, check=False).returncode != 0
    assert b.docker("ps", "-aq").stdout.decode().split() == [b.docker("inspect", "-f", "{{.Id}}", "filler")
                                                             .stdout.decode().strip()[:12]]
    b.docker("rm", "filler")
    assert used_kib(b.root) < TMPFS_MIB * 1024 // 4
    assert b.docker("run", "--rm", "busybox", "echo", "ok").stdout == b"ok\n"


def test_a_state_write_on_a_full_disk_uses_the_reserve_once(tmp_path: Path) -> None:
    from berth.util.atomic import write_json_atomic
    from berth.util.reserve import RESERVE_NAME, ensure_reserve, with_reserve
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "berth-reserve", str(mnt)], check=True)
    try:
        ensure_reserve(mnt)
        assert (mnt / RESERVE_NAME).stat().st_size > 0
        with open(mnt / "fill", "wb") as f:
            with pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        with pytest.raises(OSError):
            write_json_atomic(mnt / "plain.json", {"x": 1})
        with_reserve(mnt, lambda: write_json_atomic(mnt / "state.json", {"status": "exited"}))
        assert json.loads((mnt / "state.json").read_text()) == {"status": "exited"}
        assert not (mnt / RESERVE_NAME).exists()          # spent, and no room to make it again
        assert [p.name for p in mnt.iterdir() if p.name.endswith(".tmp")] == []
        with pytest.raises(OSError):                      # the second time there is nothing left to give
            with_reserve(mnt, lambda: write_json_atomic(mnt / "other.json", {"x": "y" * 300_000}))
        (mnt / "fill").unlink()
        with_reserve(mnt, lambda: write_json_atomic(mnt / "state.json", {"status": "running"}))
        assert (mnt / RESERVE_NAME).exists()              # made again once there is room
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_pull_that_fills_the_disk_fails_cleanly_and_the_next_pull_works(small_root: PrivateBerthd) -> None:
    """The case as written: a pull (from the in-process fake registry on 127.0.0.1) runs out of space."""
    from tests.distribution.fake import OCI_LAYER_GZIP
    from tests.distribution.test_api_failures import ThreadedFake
    from tests.images.archives import simple_layer
    b = small_root
    before = used_kib(b.root)
    big = simple_layer({"payload.bin": os.urandom((TMPFS_MIB + 16) << 20)})
    small = simple_layer({"small.bin": os.urandom(2 << 20)})
    with ThreadedFake() as reg:
        reg.add_image("team/huge", "1", [big], layer_type=OCI_LAYER_GZIP.removesuffix("+gzip"))
        reg.add_image("team/small", "1", [small], layer_type=OCI_LAYER_GZIP.removesuffix("+gzip"))
        proc = b.docker("pull", f"{reg.address}/team/huge:1", check=False)
        assert proc.returncode != 0 and b"no space" in proc.stderr.lower(), proc.stderr
        assert b"huge" not in b.docker("images", "-a").stdout
        big_files = sorted(f"{p.relative_to(b.root)} {p.stat().st_size}" for p in b.root.rglob("*")
                           if p.is_file() and p.stat().st_size > 1 << 20 and "snapshots/1/" not in str(p))
        assert used_kib(b.root) <= before + 2048, (before, used_kib(b.root), big_files)
        assert b.api("GET", "/_ping") == (200, b"OK")
        assert b.docker("pull", f"{reg.address}/team/small:1").returncode == 0
        assert b"team/small" in b.docker("images").stdout
