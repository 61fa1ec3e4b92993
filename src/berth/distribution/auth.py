"""Registry authentication: `WWW-Authenticate` challenges, Basic credentials and Bearer tokens.

Token flow (distribution's token spec): GET <realm>?service=<service>&scope=<scope>... with Basic credentials,
or POST grant_type=refresh_token for an identity token; the answer's `token`/`access_token` is used until
`expires_in` (default 60 s) runs out, then fetched again. Credentials go to a token realm only when its host is
the registry's own host; a realm elsewhere gets an anonymous token request.
May import: berth.errors, berth.distribution.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from berth.errors import InvalidArgument

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str                                   # "basic" or "bearer", lowercased
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


def parse_challenges(headers: Sequence[str]) -> list[Challenge]:
    """Every challenge in WWW-Authenticate headers: `Bearer realm="…",service="…"`, `Basic realm="…"`."""
    out: list[Challenge] = []
    for header in headers:
        text = header.strip()
        while text:
            scheme, _, rest = text.partition(" ")
            params: dict[str, str] = {}
            pos = 0
            while pos < len(rest):
                m = _PARAM.match(rest, pos)
                if not m or m.end() == pos:
                    break
                value = m.group(2) if m.group(2) is not None else m.group(3)
                params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
                pos = m.end()
            if not scheme:
                break
            out.append(Challenge(scheme.lower(), params))
            text = rest[pos:].strip()
    return out


def pick(challenges: Sequence[Challenge]) -> Challenge | None:
    """Bearer is preferred over Basic, as dockerd does."""
    for scheme in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == scheme:
                return c
    return None


def repository_scope(path: str, actions: Sequence[str]) -> str:
    if not actions:
        raise InvalidArgument(f"a scope for {path} needs at least one action")
    return f"repository:{path}:{','.join(actions)}"


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float
    refresh_token: str = ""
