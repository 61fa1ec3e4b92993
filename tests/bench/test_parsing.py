"""The benchmark scripts' parsers: apt sources, docker-archive manifests, -X importtime output, py-spy stacks.

No dockers, no network: inputs are written to tmp_path.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from bench.image import ImageBuildError, apt_mirror, archive_info, tiny_rootfs_tar
from bench.load_save import parse_importtime
from bench.profile import frame_function, summarize

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://mirror.example/debian
  http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_apt_mirror_takes_the_bookworm_deb_stanza_not_security_or_sources(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "debian.sources").write_text(DEB822)
    assert apt_mirror(tmp_path / "d", tmp_path / "none.list") == "http://mirror.example/debian"


def test_apt_mirror_falls_back_to_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main  # trailing\n")
    assert apt_mirror(tmp_path / "missing-dir", tmp_path / "sources.list") == "http://one.example/debian"


def test_apt_mirror_without_a_bookworm_source_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.sources").write_text("Types: deb\nURIs: http://a.example/debian\nSuites: trixie\n")
    (tmp_path / "sources.list").write_text("deb http://b.example/debian bullseye main\n")
    with pytest.raises(ImageBuildError, match="no bookworm"):
        apt_mirror(tmp_path / "d", tmp_path / "sources.list")


def _archive(path: Path, manifest: object | None) -> Path:
    with tarfile.open(path, "w") as tf:
        if manifest is not None:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_archive_info_counts_distinct_layers_and_all_tags(tmp_path: Path) -> None:
    tar = _archive(tmp_path / "a.tar", [
        {"Config": "c1.json", "RepoTags": ["a:1", "a:2"], "Layers": ["l1/layer.tar", "l2/layer.tar"]},
        {"Config": "c2.json", "RepoTags": None, "Layers": ["l1/layer.tar", "l3/layer.tar"]},
    ])
    info = archive_info(tar)
    assert info.refs == ("a:1", "a:2") and info.layers == 3 and info.size == tar.stat().st_size


def test_archive_info_refuses_a_tar_without_manifest(tmp_path: Path) -> None:
    with pytest.raises((ImageBuildError, KeyError)):
        archive_info(_archive(tmp_path / "empty.tar", None))


def test_tiny_rootfs_tars_differ_so_their_images_differ() -> None:
    assert len({tiny_rootfs_tar(n) for n in range(100)}) == 100
    assert tiny_rootfs_tar(5) == tiny_rootfs_tar(5)


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:       300 |        420 | io
import time:       900 |        900 |     berth.cli.gotemplate
import time:      1500 |       2400 |   berth.cli.formatter
import time:       100 |       2500 | berth.cli.main
berth version 0.1.0
"""


def test_parse_importtime_keeps_self_cumulative_and_nesting() -> None:
    costs = parse_importtime(IMPORTTIME)
    assert [(c.module, c.self_us, c.cumulative_us, c.depth) for c in costs] == [
        ("_io", 120, 120, 1), ("io", 300, 420, 0), ("berth.cli.gotemplate", 900, 900, 2),
        ("berth.cli.formatter", 1500, 2400, 1), ("berth.cli.main", 100, 2500, 0)]


def test_frame_function_drops_line_numbers_and_the_repo_prefix() -> None:
    assert frame_function("load (/repo/src/berth/images/service.py:97)", "/repo") == \
        "load (src/berth/images/service.py)"
    assert frame_function("<module> (<string>:4)") == "<module> (<string>)"
    assert frame_function("weird frame") == "weird frame"


def test_summarize_counts_leaves_as_self_and_every_frame_once_as_inclusive() -> None:
    raw = [
        "main (/r/a.py:1);load (/r/b.py:10);sha (/r/c.py:5) 30\n",
        "main (/r/a.py:1);load (/r/b.py:12);write (/r/d.py:7) 10\n",
        "main (/r/a.py:1);rec (/r/e.py:1);rec (/r/e.py:2) 5\n",
        "garbage line without count\n",
        "\n",
    ]
    p = summarize(raw, root="/r")
    by = {f.function: f for f in p.functions}
    assert p.total == 45
    assert by["load (b.py)"].self_samples == 0 and by["load (b.py)"].inclusive_samples == 40
    assert by["sha (c.py)"].self_samples == 30
    assert by["rec (e.py)"].inclusive_samples == 5 and by["rec (e.py)"].self_samples == 5
    assert by["main (a.py)"].inclusive_samples == 45
    assert [f.function for f in p.top(1)] == ["sha (c.py)"]
    assert "66.7%  sha (c.py)" in p.format(3)
