"""Names the distribution spec lets a client put in a URL: repositories, tags, upload session ids.

Parsed once at the HTTP edge (from the raw, still percent-encoded path, so an encoded '/' or '..' never
passes), then passed inward as these types. The grammar is the OCI distribution spec's.
May import: berth.errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidArgument

NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{NAME_COMPONENT}(?:/{NAME_COMPONENT})*"
TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
UPLOAD_ID_PATTERN = r"[a-f0-9]{32}"
MAX_NAME_LENGTH = 255

_NAME = re.compile(NAME_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_UPLOAD_ID = re.compile(UPLOAD_ID_PATTERN)


@dataclass(frozen=True, slots=True, order=True)
class RepoName:
    """A repository name such as `library/busybox`; its components become directories on disk."""

    value: str

    @classmethod
    def parse(cls, text: str) -> RepoName:
        if len(text) > MAX_NAME_LENGTH or not _NAME.fullmatch(text):
            raise InvalidArgument(f"invalid repository name {text[:300]!r}: expected lowercase components "
                                  f"[a-z0-9] joined by '.', '_', '__' or '-', separated by '/', at most "
                                  f"{MAX_NAME_LENGTH} characters")
        return cls(text)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.value.split("/"))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, order=True)
class Tag:
    value: str

    @classmethod
    def parse(cls, text: str) -> Tag:
        if not _TAG.fullmatch(text):
            raise InvalidArgument(f"invalid tag {text[:200]!r}: expected [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class UploadId:
    """An upload session id: 32 lowercase hex digits, chosen by the server."""

    value: str

    @classmethod
    def parse(cls, text: str) -> UploadId:
        if not _UPLOAD_ID.fullmatch(text):
            raise InvalidArgument(f"invalid upload id {text[:100]!r}: expected 32 lowercase hex digits")
        return cls(text)

    def __str__(self) -> str:
        return self.value
