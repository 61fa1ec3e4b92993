"""berth's registry vs Debian's docker-registry (distribution 2.8), both serving skopeo over loopback:
`python -m bench.registry_bench [push] [pull] [--rounds N] [--mib 300]`.

Scenarios (each a `bench.harness.Scenario`, registries alternating round by round, docker-registry the baseline):
  push  `skopeo copy oci:LAYOUT:1 docker://127.0.0.1:PORT/bench/app:1`; before every round (untimed) the registry
        is stopped, its storage wiped and the registry started again, so every push uploads every blob.
  pull  `skopeo copy docker://…/bench/app:1 oci:OUT:1` of the image pushed once (untimed) beforehand; the output
        directory is removed before every round.
The image (built once, cached in /var/tmp/berth-bench/registry-layout, `BERTH_BENCH_CACHE` to move it) is an OCI
layout of ~300 MiB in 6 gzip layers of seeded incompressible bytes: skopeo copies compressed layers as they are
(it would gzip uncompressed ones on the way to a registry), so the registries' own work (receive, hash, store;
sendfile) is what differs. Each pull is checked (the manifest digest).

May import: the standard library, bench.*, tests.registry.servers. Nothing from berth: it runs as a program.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.registry.servers import RegistryServer, start_berth, start_docker_registry

from bench.harness import Contender, Result, Scenario, format_table, run_scenario, write_result

CACHE = Path(os.environ.get("BERTH_BENCH_CACHE", "/var/tmp/berth-bench"))
LAYOUT_TAG = "1"
REPO = "bench/app"


def _layer(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(f"data/layer{seed}.bin")
        info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def bench_layout(total_mib: int = 300, layers: int = 6) -> tuple[Path, str]:
    """The cached OCI layout and its manifest digest."""
    path = CACHE / f"registry-layout-gz-{total_mib}"
    done = path / "manifest-digest"
    if done.exists():
        return path, done.read_text().strip()
    shutil.rmtree(path, ignore_errors=True)
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    sizes = [total_mib * (1 << 20) * w // 21 for w in (6, 5, 4, 3, 2, 1)][:layers]
    descs, diff_ids = [], []
    for i, size in enumerate(sizes):
        tar = _layer(i, size)
        diff_ids.append(f"sha256:{hashlib.sha256(tar).hexdigest()}")
        data = gzip.compress(tar, compresslevel=1, mtime=0)
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{digest}",
                      "size": len(data)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdigest = hashlib.sha256(config).hexdigest()
    (blobs / cdigest).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": f"sha256:{cdigest}", "size": len(config)},
                           "layers": descs}).encode()
    mdigest = hashlib.sha256(manifest).hexdigest()
    (blobs / mdigest).write_bytes(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{mdigest}",
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": LAYOUT_TAG}}]}))
    done.write_text(f"sha256:{mdigest}\n")
    return path, f"sha256:{mdigest}"


class Slot:
    """One registry kind, restartable on the same port with empty storage."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.server: RegistryServer | None = None

    def start_fresh(self) -> None:
        self.stop()
        for sub in ("berth-root", "distribution-root"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.server = start_berth(self.workdir) if self.kind == "berth" else start_docker_registry(self.workdir)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return self.server.host

    def pid(self) -> int | None:
        return self.server.proc.pid if self.server is not None else None


def _skopeo(*args: str) -> None:
    p = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {p.stderr.strip()}")


def push_scenario(slots: dict[str, Slot], layout: Path, rounds: int) -> Scenario:
    def contender(slot: Slot) -> Contender:
        def action() -> None:
            _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{LAYOUT_TAG}",
                    f"docker://{slot.host}/{REPO}:1")
        return Contender(slot.kind, action, setup=slot.start_fresh, client="skopeo 1.9", daemon_pid=slot.pid)

    return Scenario("registry-push", "skopeo copy of a ~300 MiB, 6-layer image into an empty registry",
                    tuple(contender(s) for s in slots.values()), rounds=rounds, baseline="docker-registry")


def pull_scenario(slots: dict[str, Slot], layout: Path, digest: str, out: Path, rounds: int) -> Scenario:
    def contender(slot: Slot) -> Contender:
        dest = out / slot.kind

        def setup() -> None:
            shutil.rmtree(dest, ignore_errors=True)
            out.mkdir(parents=True, exist_ok=True)

        def action() -> None:
            _skopeo("copy", "--src-tls-verify=false", f"docker://{slot.host}/{REPO}:1", f"oci:{dest}:1")

        def check() -> None:
            got = json.loads((dest / "index.json").read_text())["manifests"][0]["digest"]
            if got != digest:
                raise RuntimeError(f"{slot.kind}: pulled manifest {got}, pushed {digest}")
        return Contender(slot.kind, action, setup=setup, teardown=check, client="skopeo 1.9", daemon_pid=slot.pid)

    return Scenario("registry-pull", "skopeo copy of the ~300 MiB, 6-layer image out of the registry to an OCI dir",
                    tuple(contender(s) for s in slots.values()), rounds=rounds, baseline="docker-registry")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("scenarios", nargs="*", help="push, pull (default: both)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--mib", type=int, default=300)
    args = p.parse_args(argv)
    args.scenarios = args.scenarios or ["push", "pull"]
    if set(args.scenarios) - {"push", "pull"}:
        p.error(f"unknown scenarios {sorted(set(args.scenarios) - {'push', 'pull'})}; choose push, pull")
    layout, digest = bench_layout(args.mib)
    size = sum(f.stat().st_size for f in (layout / "blobs" / "sha256").iterdir())
    print(f"image: {layout} ({size / (1 << 20):.0f} MiB), manifest {digest}", flush=True)
    with tempfile.TemporaryDirectory(prefix="berth-registry-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        slots = {k: Slot(k, work / k) for k in ("berth", "docker-registry")}
        for s in slots.values():
            s.workdir.mkdir()
        results: list[Result] = []
        try:
            runs: dict[str, Callable[[], Scenario]] = {
                "push": lambda: push_scenario(slots, layout, args.rounds),
                "pull": lambda: pull_scenario(slots, layout, digest, work / "out", args.rounds),
            }
            for name in args.scenarios:
                if name == "pull":
                    for s in slots.values():  # one untimed push to pull from
                        s.start_fresh()
                        _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{LAYOUT_TAG}",
                                f"docker://{s.host}/{REPO}:1")
                result = run_scenario(runs[name](), log=sys.stdout, notes={"image_bytes": size})
                results.append(result)
                print(format_table(result), flush=True)
                print(f"  written to {write_result(result)}", flush=True)
        finally:
            for s in slots.values():
                s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
