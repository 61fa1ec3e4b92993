"""The snapshotter's records: what is kept on disk about each layer and container snapshot.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from berth.errors import Corrupt, InvalidArgument
from berth.oci.digest import Digest
from berth.util.atomic import read_json

T = TypeVar("T")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True, slots=True)
class LayerInfo:
    chain_id: Digest
    diff_id: Digest
    parent: Digest | None
    id: str                  # directory name under the snapshot root
    size: int                # bytes of the uncompressed tar stream
    entries: int

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LayerInfo:
        parent = raw.get("parent")
        return cls(Digest.parse(raw["chain_id"]), Digest.parse(raw["diff_id"]),
                   Digest.parse(parent) if parent else None, short_id(raw["id"]), int(raw["size"]),
                   int(raw["entries"]))

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": str(self.chain_id), "diff_id": str(self.diff_id),
                "parent": str(self.parent) if self.parent else None, "id": self.id,
                "size": self.size, "entries": self.entries}


@dataclass(frozen=True, slots=True)
class ActiveSnapshot:
    key: str
    id: str
    parent: Digest | None
    upper: Path
    work: Path


@dataclass(frozen=True, slots=True)
class Usage:
    size: int                # bytes allocated on disk
    inodes: int


def load_record(path: Path, parse: Callable[[dict[str, Any]], T]) -> T:
    """A metadata record; Corrupt if it does not parse (FileNotFoundError passes through)."""
    try:
        return parse(read_json(path))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidArgument) as exc:
        raise Corrupt(f"snapshot record {path} is unreadable ({exc}); "
                      "run the snapshot cleanup to set it aside") from exc


def check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise InvalidArgument(f"invalid snapshot key {key!r}: use 1-128 letters, digits, '_', '.', '-'")


def short_id(value: object) -> str:
    """A snapshot directory name from a record: digits only, so it never leads out of the root."""
    text = str(value)
    if not text.isdigit():
        raise ValueError(f"bad snapshot directory id {text!r}")
    return text
