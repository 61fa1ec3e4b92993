"""The one exception hierarchy of berth, grouped by what a caller can do about an error.

May import: nothing from berth. Every other package raises these (or subclasses of them).
"""

from __future__ import annotations


class BerthError(Exception):
    """Base of every error berth raises on purpose."""


class NotFound(BerthError):
    """The named object does not exist."""


class Conflict(BerthError):
    """The object exists already, or is in a state that forbids the operation."""


class InvalidArgument(BerthError):
    """The caller's input is malformed or not allowed."""


class Unavailable(BerthError):
    """Try again later: a lock, the network, a registry, a daemon."""


class NotModified(BerthError):
    """The operation had nothing to do (e.g. starting a running container)."""


class Forbidden(BerthError):
    """The caller may not do this (permissions, auth)."""


class Unauthorized(Forbidden):
    """Credentials are missing or wrong."""


class Corrupt(InvalidArgument):
    """Data does not match what it claims to be: a digest, a size, a tar stream."""


class DigestMismatch(Corrupt):
    """Content whose sha256 differs from the digest it was expected to have."""


class UnsafePath(InvalidArgument):
    """A path (in a layer, an archive, a copy) would escape its root."""


class LimitExceeded(InvalidArgument):
    """Input larger than a configured limit (size, entries, manifest bytes)."""


class RuntimeFailure(BerthError):
    """The container runtime failed to create, start or manage a container."""
