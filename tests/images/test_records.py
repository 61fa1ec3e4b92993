from __future__ import annotations

from pathlib import Path

import pytest

from berth.errors import Conflict, NotFound
from berth.images.records import ImageRecords
from berth.oci.digest import Digest
from berth.oci.reference import Reference


def _ids() -> tuple[Digest, Digest, Digest]:
    return Digest.from_hex("ab" + "0" * 62), Digest.from_hex("ac" + "1" * 62), Digest.from_hex("ff" * 32)


def test_a_tag_moves_to_the_newest_image_and_leaves_the_old_one_dangling(tmp_path: Path) -> None:
    recs = ImageRecords(tmp_path)
    a, b, m = _ids()
    recs.add(a, m, [Reference.parse("app:1")])
    _, moved = recs.add(b, m, [Reference.parse("app:1")])
    assert moved == ["docker.io/library/app:1"]
    assert recs.resolve("app:1").id == b
    assert recs.get(a) is not None and recs.get(a).tags == ()  # type: ignore[union-attr]


def test_images_resolve_by_id_prefix_name_and_full_id(tmp_path: Path) -> None:
    recs = ImageRecords(tmp_path)
    a, b, m = _ids()
    recs.add(a, m, [Reference.parse("localhost:5000/x/y:t")])
    recs.add(b, m, [])
    assert recs.resolve("ab").id == a
    assert recs.resolve("sha256:ac").id == b
    assert recs.resolve(str(a)).id == a
    assert recs.resolve(a.hex).id == a
    assert recs.resolve("localhost:5000/x/y:t").id == a
    with pytest.raises(Conflict, match="ambiguous"):
        recs.resolve("a")
    with pytest.raises(NotFound, match="No such image: nothere"):
        recs.resolve("nothere")


def test_records_survive_a_new_instance(tmp_path: Path) -> None:
    a, _, m = _ids()
    ImageRecords(tmp_path).add(a, m, [Reference.parse("busybox")])
    assert ImageRecords(tmp_path).resolve("busybox:latest").manifest == m
