"""Extraction throughput: `python -m tests.snapshots.bench_extract [--tar T | --from DIR...] [--into DIR]`.

Not a test (nothing asserts a speed: these VMs are shared and noisy). It writes a layer of the given
directories with berth's own writer (default: a ~390 MB slice of /usr/share), compresses it with gzip
and zstd, and times apply_layer for each form into --into (default: a fresh temp dir beside the tar;
on ext4 the kernel's file creation dominates, on tmpfs berth's own overhead shows).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tempfile
import time
from pathlib import Path

import zstandard

from berth.snapshots.apply import apply_layer
from berth.snapshots.diff import write_tree

DEFAULT = ["locale", "doc", "vim", "perl", "i18n", "zoneinfo", "java", "icons"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tar", type=Path, help="an existing plain layer tar")
    parser.add_argument("--from", dest="sources", nargs="*", type=Path,
                        default=[Path("/usr/share") / d for d in DEFAULT])
    parser.add_argument("--into", type=Path)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "berth-bench")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    plain = args.tar or args.work / "layer.tar"
    if args.tar is None:
        tree = args.work / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir()
        for src in args.sources:
            if src.is_dir():
                shutil.copytree(src, tree / src.name, symlinks=True)
        started = time.perf_counter()
        with open(plain, "wb") as out:
            written = write_tree(tree, out)
        took = time.perf_counter() - started
        print(f"write_tree: {written.entries} entries, {written.size / 1e6:.0f} MB in {took:.2f}s "
              f"= {written.size / took / 1e6:.0f} MB/s")
        shutil.rmtree(tree)
    data = plain.read_bytes()
    forms = {"plain": plain, "gzip": args.work / "layer.tar.gz", "zstd": args.work / "layer.tar.zst"}
    forms["gzip"].write_bytes(gzip.compress(data, compresslevel=6))
    forms["zstd"].write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    for name, path in forms.items():
        target = Path(tempfile.mkdtemp(dir=args.into or args.work))
        os.sync()
        started = time.perf_counter()
        with open(path, "rb") as f:
            result = apply_layer(f, target)
        took = time.perf_counter() - started
        print(f"apply_layer {name:5}: {result.entries} entries, {result.size / 1e6:.0f} MB in {took:.2f}s "
              f"= {result.size / took / 1e6:.0f} MB/s (uncompressed)")
        shutil.rmtree(target)


if __name__ == "__main__":
    main()
