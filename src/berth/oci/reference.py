"""Image references with Docker's normalisation and the distribution spec's grammar.

`busybox` -> docker.io/library/busybox:latest; `host:5000/a/b:tag@sha256:...`.
May import: berth.errors, berth.oci.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidArgument
from berth.oci.digest import Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_TAG_PREFIX = re.compile(r"[\w][\w.-]*")
_ID = re.compile(r"[a-f0-9]{64}")


def is_tag(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def is_repository_path(text: str) -> bool:
    return _PATH.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str, default_tag: bool = True) -> Reference:
        """Parse and normalise like the docker CLI. A reference without tag or digest gets `latest` unless
        default_tag is False."""
        if not text:
            raise InvalidArgument("invalid reference format: empty image name")
        remainder, digest = text, None
        if "@" in text:
            remainder, _, dtext = text.partition("@")
            try:
                digest = Digest.parse(dtext)
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid reference format: {text!r}: {exc}") from exc
        tag = ""
        last_slash = remainder.rfind("/")
        colon = remainder.rfind(":")
        if colon > last_slash:
            remainder, tag = remainder[:colon], remainder[colon + 1:]
            if not _TAG.fullmatch(tag):
                if _TAG_PREFIX.fullmatch(tag):
                    raise InvalidArgument(f"invalid reference format: tag {tag[:32]!r}... is longer than 128 "
                                          f"characters")
                raise InvalidArgument(f"invalid reference format: {text!r} has an invalid tag {tag!r}")
        domain, path = _split_domain(remainder, text)
        if not _PATH.fullmatch(path):
            if path.lower() != path and _PATH.fullmatch(path.lower()):
                raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase")
            raise InvalidArgument(f"invalid reference format: {text!r} is not a valid repository name "
                                  f"(lowercase letters, digits and . _ __ - separators between them)")
        if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"invalid reference format: repository name {text[:40]!r}... is longer than "
                                  f"{MAX_NAME_LENGTH} characters")
        if not tag and digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(domain, path, tag, digest)

    @property
    def name(self) -> str:
        """The full repository name, e.g. docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: busybox, user/app, localhost:5000/app."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len(OFFICIAL_PREFIX):] if self.path.startswith(OFFICIAL_PREFIX) and \
                self.path.count("/") == 1 else self.path
        return self.name

    def with_tag(self, tag: str) -> Reference:
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"invalid tag {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.domain, self.path, "", digest)

    @property
    def familiar(self) -> str:
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_domain(remainder: str, text: str) -> tuple[str, str]:
    first, sep, rest = remainder.partition("/")
    if sep and (("." in first or ":" in first) or first == "localhost" or first.lower() != first):
        if not _DOMAIN.fullmatch(first):
            raise InvalidArgument(f"invalid reference format: {text!r} has an invalid registry host {first!r}")
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, remainder
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def looks_like_id(text: str) -> bool:
    """A full image or container id (64 hex, optionally 'sha256:'-prefixed)."""
    return _ID.fullmatch(text.removeprefix("sha256:")) is not None
