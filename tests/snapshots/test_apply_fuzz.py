"""Random hostile layers: whatever the extractor accepts or refuses, nothing outside the root changes."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.errors import BerthError
from berth.snapshots.apply import apply_layer
from tests.snapshots.layers import E, fingerprint, tar_bytes

_COMPONENTS = ["a", "b", "..", ".", "", "etc", ".wh.a", ".wh..wh..opq", "victim", "canary", "x"]
_TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]


def _paths(extra: list[str]) -> st.SearchStrategy[str]:
    rel = st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=5).map("/".join)
    return st.one_of(rel, rel.map(lambda p: "/" + p), st.sampled_from(extra))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_layers_never_touch_anything_outside_the_root(tmp_path: Path, data: st.DataObject) -> None:
    outside = tmp_path / "outside"
    if not outside.exists():
        (outside / "canary").mkdir(parents=True)
        (outside / "canary" / "file").write_bytes(b"canary")
        (outside / "victim").write_bytes(b"victim")
    before = fingerprint(outside, dir_mtimes=True)
    targets = [str(outside), str(outside / "canary"), "../../canary", "../../../victim", "/", "../..",
               str(outside / "victim")]
    entries = data.draw(st.lists(st.builds(
        lambda name, kind, link: E(name, kind, data=b"payload", linkname=link, mode=0o755),
        _paths(targets), st.sampled_from(_TYPES), _paths(targets)), min_size=1, max_size=8))
    work = Path(tempfile.mkdtemp(dir=outside))        # .../outside/<tmp>/root: victims two levels up
    root = work / "root"
    root.mkdir()
    try:
        apply_layer(io.BytesIO(tar_bytes(entries)), root)
    except BerthError:
        pass
    finally:
        shutil.rmtree(work)
    assert fingerprint(outside, dir_mtimes=True) == before, entries
    assert sorted(os.listdir(outside)) == ["canary", "victim"], entries
