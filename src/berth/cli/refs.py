"""Image references as the docker CLI checks and normalises them before sending (distribution/reference rules).

`busybox` → docker.io/library/busybox:latest; `reg:5000/team/x:1` keeps its registry. Errors read like docker's
("invalid reference format: repository name (library/Bad) must be lowercase").

May import: the standard library, berth.errors.
"""

from __future__ import annotations

import re

from berth.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?$")
_FULL_ID = re.compile(r"^[a-f0-9]{64}$")


class ImageRef:
    """A parsed reference. A slotted class, not a dataclass, to keep dataclasses off the CLI's import path."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None, digest: str | None) -> None:
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    def __repr__(self) -> str:
        return f"ImageRef({self.domain!r}, {self.path!r}, {self.tag!r}, {self.digest!r})"

    @property
    def name(self) -> str:
        """Fully qualified repository name: docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """As docker shows it: busybox, team/x, reg:5000/x."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix("library/") if self.path.count("/") == 1 else self.path
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path


def parse_normalized(text: str) -> ImageRef:
    """reference.ParseNormalizedNamed: docker's checks in docker's order, and its messages."""
    if _FULL_ID.match(text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(text)
    remote_name = remainder.partition(":")[0]
    if remote_name.lower() != remote_name:
        raise InvalidArgument(f"invalid reference format: repository name ({remote_name}) must be lowercase")
    m = _REFERENCE.match(f"{domain}/{remainder}")
    if m is None or not text:
        raise InvalidArgument("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > 255:
        raise InvalidArgument("repository name must not be more than 255 characters")
    domain, _, path = name.partition("/")
    return ImageRef(domain, path, tag, digest)


def try_familiar(text: str) -> tuple[str, str | None, str | None] | None:
    """(familiar name, tag, digest) of a RepoTags/RepoDigests entry, or None where docker's parser fails."""
    try:
        ref = parse_normalized(text)
    except InvalidArgument:
        return None
    return ref.familiar_name, ref.tag, ref.digest
