"""Content digests (sha256 only, as Docker and every registry in practice use).

May import: berth.errors.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from berth.errors import InvalidArgument

_SHA256_HEX = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hex_ = text.partition(":")
        if not sep or algorithm != "sha256" or not _SHA256_HEX.fullmatch(hex_):
            raise InvalidArgument(f"invalid digest {text!r}: expected 'sha256:' and 64 lowercase hex digits")
        return cls(algorithm, hex_)

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    @classmethod
    def from_hex(cls, hex_: str) -> Digest:
        return cls.parse("sha256:" + hex_)

    @staticmethod
    def is_valid(text: str) -> bool:
        algorithm, sep, hex_ = text.partition(":")
        return bool(sep) and algorithm == "sha256" and _SHA256_HEX.fullmatch(hex_) is not None

    @property
    def short(self) -> str:
        """The 12-hex form Docker prints in tables."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """OCI image spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else Digest.of(f"{out[-1]} {diff_id}".encode()))
    return out
