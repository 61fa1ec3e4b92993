"""ContainerStore.names(): the name check of a create reads only the state files, and sees exactly the complete
records (not one being created or removed, nor one whose state does not parse)."""

from __future__ import annotations

import os
from pathlib import Path

from berth.engine.containers import ContainerConfig, ContainerStore
from berth.oci.digest import Digest

IMAGE = Digest.parse("sha256:" + "ab" * 32)


def _config() -> ContainerConfig:
    return ContainerConfig(image="busybox", image_id=IMAGE, args=("true",))


def test_names_are_those_of_complete_records(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "containers")
    assert store.names() == {}
    a = store.create("a" * 64, "2026-01-01T00:00:00Z", _config(), "first")
    b = store.create("b" * 64, "2026-01-01T00:00:00Z", _config(), "second")
    assert store.names() == {"first": a.id, "second": b.id} == {c.name: c.id for c in store.all()}
    store.save_state(b, b.state.__class__("renamed"), durable=False)
    assert store.names() == {"first": a.id, "renamed": b.id}
    # a record being created: its directory and state exist, its config.json not yet
    half = store.dir_of("c" * 64)
    half.mkdir()
    (half / "state.json").write_text('{"name": "half"}')
    # one being removed, renamed out of sight
    gone = store.root / (".removing-" + "d" * 64)
    gone.mkdir()
    (gone / "state.json").write_text('{"name": "gone"}')
    (gone / "config.json").write_text("{}")
    assert store.names() == {"first": a.id, "renamed": b.id}
    store.remove(a.id)
    assert store.names() == {"renamed": b.id}


def test_a_state_that_does_not_parse_is_not_a_name(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "containers")
    ok = store.create("a" * 64, "2026-01-01T00:00:00Z", _config(), "fine")
    for n, text in enumerate(["{broken", "[]", '{"nameless": 1}']):
        bad = store.create(f"{n}" * 64, "2026-01-01T00:00:00Z", _config(), f"bad{n}")
        (bad.dir / "state.json").write_text(text)
    assert store.names() == {"fine": ok.id}
    assert [c.name for c in store.all()] == ["fine"]   # all() quarantines them
    assert sorted(os.listdir(tmp_path / "quarantine")) == ["0" * 64, "1" * 64, "2" * 64]
