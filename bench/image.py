"""The benchmark images, built once offline-from-the-internet and cached under /var/tmp/berth-bench/.

`bench_image()`: a ~400 MB, 4-layer docker-archive tar (`berth-bench:1`):
  1. a Debian bookworm minbase rootfs with python3, made by mmdebstrap from the Debian mirror that this machine's
     apt already uses (the only network it touches), imported into a private dockerd (`docker import`);
  2. /opt/bench/lib: thousands of small generated Python modules (many small files, like a site-packages);
  3. /opt/bench/blobs: a few large incompressible files;
  4. the byte-compiled lib (`RUN python3 -m compileall`, run with `--network=none`);
built by the classic builder (`DOCKER_BUILDKIT=0`), then `docker save`d.
`many_images()`: one docker-archive holding 100 distinct tiny single-layer images (`berth-bench-many/N:1`), for
timing `images` with 100 images present.

Everything is deterministic (seeded), so a rebuild gives the same content. Delete the cache dir to rebuild, or run
`python -m bench.image --rebuild`. May import: the standard library, tests.peers (the private dockerd).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.peers import PrivateDockerd, docker

CACHE = Path(os.environ.get("BERTH_BENCH_CACHE", "/var/tmp/berth-bench"))
# Bump when the recipe changes: a cached image made by another recipe is rebuilt.
RECIPE = 1
BENCH_REF = "berth-bench:1"
BASE_REF = "berth-bench-base:1"
MANY_COUNT = 100
MANY_REPO = "berth-bench-many"

_LIB_FILES = 6000  # small modules, 2-16 KiB of source each
_BLOB_FILES = 3
_BLOB_SIZE = 40 << 20
_MTIME = 1_700_000_000


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    tar: Path
    refs: tuple[str, ...]
    size: int
    layers: int  # distinct layers in the archive

    def to_json(self) -> dict[str, object]:
        return {"recipe": RECIPE, "tar": str(self.tar), "refs": list(self.refs), "size": self.size,
                "layers": self.layers}

    def describe(self) -> str:
        return f"{self.tar}: {self.size / (1 << 20):.0f} MiB, {self.layers} layers, {len(self.refs)} image(s)"


class ImageBuildError(RuntimeError):
    """The bench image could not be made (no mirror, mmdebstrap or dockerd failed)."""


# ---- the Debian mirror ---------------------------------------------------------------------------------------

def apt_mirror(sources_dir: Path = Path("/etc/apt/sources.list.d"),
               sources_list: Path = Path("/etc/apt/sources.list")) -> str:
    """The URI of the Debian archive (not -security) that apt uses for bookworm here, deb822 or one-line style."""
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = _deb822_fields(stanza)
            suites = fields.get("suites", "").split()
            if "deb" in fields.get("types", "").split() and "bookworm" in suites:
                uris = fields.get("uris", "").split()
                if uris:
                    return uris[0]
    if sources_list.is_file():
        for line in sources_list.read_text().splitlines():
            # "deb [opt=a opt2=b] URI SUITE COMPONENTS...": drop the bracketed options.
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if words[:1] == ["deb"]:
                rest = words[1:]
                if len(rest) >= 2 and rest[1] == "bookworm":
                    return rest[0]
    raise ImageBuildError(f"no bookworm 'deb' source in {sources_dir}/*.sources or {sources_list}")


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key is not None:
            fields[key] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = value.strip()
    return fields


# ---- generated content ---------------------------------------------------------------------------------------

def write_build_context(ctx: Path, seed: int = 20261128) -> None:
    """The Dockerfile and the generated files of layers 2-4."""
    rng = random.Random(seed)
    lib = ctx / "lib" / "benchpkg"
    for i in range(_LIB_FILES):
        sub = lib / f"m{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        lines = [f'"""generated module {i}"""', ""]
        for j in range(rng.randint(8, 64)):
            lines.append(f"VALUE_{j} = {rng.randbytes(rng.randint(40, 120)).hex()!r}")
        lines.append(f"def f_{i}(x):\n    return x + {i}\n")
        (sub / f"mod{i % 100:02d}.py").write_text("\n".join(lines))
    for sub in sorted({p.parent for p in lib.rglob("*.py")}) + [lib]:
        (sub / "__init__.py").write_text("")
    blobs = ctx / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    for i in range(_BLOB_FILES):
        (blobs / f"blob{i}.bin").write_bytes(rng.randbytes(_BLOB_SIZE))
    for path in ctx.rglob("*"):
        os.utime(path, (_MTIME, _MTIME))
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE_REF}\n"
        "COPY lib /opt/bench/lib\n"
        "COPY blobs /opt/bench/blobs\n"
        "RUN python3 -m compileall -q /opt/bench/lib\n"
        'ENV PYTHONPATH=/opt/bench/lib BENCH=1\n'
        'LABEL org.example.purpose="berth benchmarks"\n'
        "WORKDIR /opt/bench\n"
        'CMD ["python3", "-c", "import benchpkg; print(1)"]\n'
    )


def tiny_rootfs_tar(n: int) -> bytes:
    """A one-file rootfs whose content differs with n: distinct layers, distinct image IDs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        data = f"berth bench image {n}\n".encode() * (n % 7 + 1)
        info = tarfile.TarInfo(f"etc/bench-{n}")
        info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def archive_info(tar: Path) -> ArchiveInfo:
    """Refs and distinct layer count from a docker-archive's manifest.json."""
    with tarfile.open(tar) as tf:
        member = tf.extractfile("manifest.json")
        if member is None:
            raise ImageBuildError(f"{tar} has no manifest.json: not a docker-archive")
        manifest = json.load(member)
    refs = tuple(ref for entry in manifest for ref in entry.get("RepoTags") or [])
    layers = {layer for entry in manifest for layer in entry["Layers"]}
    return ArchiveInfo(tar, refs, tar.stat().st_size, len(layers))


# ---- building ------------------------------------------------------------------------------------------------

def _cached(stamp: Path, tar: Path) -> ArchiveInfo | None:
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if data.get("recipe") != RECIPE or not tar.is_file() or tar.stat().st_size != data.get("size"):
        return None
    return ArchiveInfo(tar, tuple(data["refs"]), int(data["size"]), int(data["layers"]))


def _finish(tmp: Path, tar: Path, stamp: Path) -> ArchiveInfo:
    os.replace(tmp, tar)
    info = archive_info(tar)
    stamp.write_text(json.dumps(info.to_json()) + "\n")
    return info


@contextmanager
def _daemon(host: str | None, cache: Path) -> Iterator[str]:
    if host is not None:
        yield host
        return
    with PrivateDockerd(base_dir=cache) as d:
        yield d.host


def rootfs_tar(cache: Path = CACHE) -> Path:
    """bookworm minbase + python3 from apt's own mirror, built once."""
    out = cache / "rootfs-bookworm-python3.tar"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    tmp = out.with_name(out.name + ".part")
    if tmp.is_dir():  # left by an interrupted run
        shutil.rmtree(tmp)
    print(f"mmdebstrap minbase bookworm + python3 from {mirror} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(["mmdebstrap", "--variant=minbase", "--include=python3", "--format=tar", "--quiet",
                           "bookworm",
                           str(tmp), mirror], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ImageBuildError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr.strip()[-3000:]}")
    os.replace(tmp, out)
    return out


def bench_image(cache: Path = CACHE, host: str | None = None, rebuild: bool = False) -> ArchiveInfo:
    """The ~400 MB multi-layer bench image as a docker-archive; built (through `host` or a private dockerd) once."""
    tar, stamp = cache / "bench-image.tar", cache / "bench-image.json"
    if not rebuild and (info := _cached(stamp, tar)) is not None:
        return info
    rootfs = rootfs_tar(cache)
    ctx = cache / "context"
    shutil.rmtree(ctx, ignore_errors=True)
    write_build_context(ctx)
    tmp = tar.with_name(tar.name + ".part")
    print("building the bench image in a private dockerd ...", file=sys.stderr, flush=True)
    with _daemon(host, cache) as h:
        docker(h, "import", "-c", 'CMD ["python3"]', "-m", "bookworm minbase + python3", str(rootfs), BASE_REF)
        docker(h, "build", "--network=none", "-t", BENCH_REF, str(ctx), env={"DOCKER_BUILDKIT": "0"})
        docker(h, "save", "-o", str(tmp), BENCH_REF)
    shutil.rmtree(ctx, ignore_errors=True)
    return _finish(tmp, tar, stamp)


def many_images(cache: Path = CACHE, host: str | None = None, count: int = MANY_COUNT,
                rebuild: bool = False) -> ArchiveInfo:
    """`count` distinct one-layer images in one docker-archive, made by `docker import` of tiny tars."""
    tar, stamp = cache / f"many-images-{count}.tar", cache / f"many-images-{count}.json"
    if not rebuild and (info := _cached(stamp, tar)) is not None and len(info.refs) == count:
        return info
    cache.mkdir(parents=True, exist_ok=True)
    refs = [f"{MANY_REPO}/n{n:03d}:1" for n in range(count)]
    tmp = tar.with_name(tar.name + ".part")
    print(f"importing {count} tiny images in a private dockerd ...", file=sys.stderr, flush=True)
    with _daemon(host, cache) as h:
        for n, ref in enumerate(refs):
            docker(h, "import", "-c", f"LABEL n={n}", "-", ref, input=tiny_rootfs_tar(n))
        docker(h, "save", "-o", str(tmp), *refs)
    return _finish(tmp, tar, stamp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"cache dir (default {CACHE})")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if a cached tar exists")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench images are built in a private dockerd: run as root", file=sys.stderr)
        return 1
    for info in (bench_image(args.cache, rebuild=args.rebuild), many_images(args.cache, rebuild=args.rebuild)):
        print(info.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
