"""Who may do what: htpasswd Basic auth, and a built-in token server with per-repository rights.

`Access` is what a request needs (a repository and the actions pull/push/delete, or the catalog). An
Authorizer checks a request's Authorization header against it and raises RegistryError(UNAUTHORIZED)
carrying the WWW-Authenticate challenge the client needs. Passwords are checked with the system's
crypt(3) (libxcrypt: bcrypt `$2y$`, which `htpasswd -B` writes and distribution requires, and sha512).
Tokens are HS256 JWTs signed with a secret only this server knows, so they are both issued and verified here.
May import: berth.errors.
"""

from __future__ import annotations

import base64
import ctypes
import fnmatch
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from berth.errors import InvalidArgument
from berth.registry.errors import ErrorCode, RegistryError

ACTIONS = ("pull", "push", "delete")
ANONYMOUS = "anonymous"
TOKEN_TTL = 300


@dataclass(frozen=True, slots=True)
class Access:
    """What a request needs: type "repository" (name, actions) or "registry" ("catalog", ("*",))."""

    type: str
    name: str
    actions: tuple[str, ...]

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse_scope(cls, text: str) -> Access:
        # The name may hold a ':' (a host:port prefix) in other registries; the actions are after the last one.
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind not in ("repository", "registry") or not name:
            raise InvalidArgument(f"invalid scope {text!r}: expected repository:<name>:<actions>")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))


BASE = Access("registry", "base", ())
CATALOG = Access("registry", "catalog", ("*",))


class Authorizer(Protocol):
    def authorize(self, authorization: str | None, needs: Access) -> str: ...
    def challenge(self, needs: Access) -> str: ...


class OpenAccess:
    """No authentication: everyone may do everything."""

    def authorize(self, authorization: str | None, needs: Access) -> str:
        return ANONYMOUS

    def challenge(self, needs: Access) -> str:
        return ""


# -- passwords ------------------------------------------------------------------------------------

_libcrypt = ctypes.CDLL("libcrypt.so.1", use_errno=True)
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
_libcrypt.crypt_gensalt.restype = ctypes.c_char_p
_libcrypt.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]


def hash_password(password: str, rounds: int = 10) -> str:
    """A bcrypt hash ($2y$, the form `htpasswd -B` writes) of password."""
    salt = _libcrypt.crypt_gensalt(b"$2y$", rounds, None, 0)
    if not salt:
        raise OSError(ctypes.get_errno(), "crypt_gensalt($2y$) failed")
    out = _libcrypt.crypt(password.encode(), salt)
    if not out or out.startswith(b"*"):
        raise OSError(ctypes.get_errno(), "crypt(bcrypt) failed")
    return str(out.decode())


def check_password(password: str, hashed: str) -> bool:
    if not hashed.startswith(("$2y$", "$2b$", "$2a$", "$5$", "$6$", "$y$")):
        return False  # plain-text, DES, MD5 and SHA1 entries are refused, as distribution refuses them
    out = _libcrypt.crypt(password.encode(), hashed.encode())
    return bool(out) and hmac.compare_digest(out, hashed.encode())


_VERIFIED: set[bytes] = set()  # sha256(user, password, stored hash) of checks that passed


@dataclass(frozen=True, slots=True)
class Htpasswd:
    users: Mapping[str, str]

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        users: dict[str, str] = {}
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user or not hashed:
                raise InvalidArgument(f"{path}:{n}: expected user:hash")
            users[user] = hashed
        return cls(users)

    def check(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        if hashed is None:
            return False
        # bcrypt costs milliseconds on purpose; a push is dozens of requests with the same credentials
        key = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        if key in _VERIFIED:
            return True
        if not check_password(password, hashed):
            return False
        if len(_VERIFIED) > 1024:
            _VERIFIED.clear()
        _VERIFIED.add(key)
        return True


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class BasicAuth:
    """htpasswd users; any of them may do everything (as distribution's htpasswd auth)."""

    def __init__(self, htpasswd: Htpasswd, realm: str = "berth-registry") -> None:
        self._htpasswd = htpasswd
        self._realm = realm

    def authorize(self, authorization: str | None, needs: Access) -> str:
        creds = parse_basic(authorization)
        if creds is not None and self._htpasswd.check(*creds):
            return creds[0]
        raise RegistryError(ErrorCode.UNAUTHORIZED, "authentication required" if creds is None
                            else "invalid username or password",
                            detail=[{"Type": needs.type, "Name": needs.name, "Action": a} for a in needs.actions]
                            or None) from None

    def challenge(self, needs: Access) -> str:
        return f'Basic realm="{self._realm}"'


# -- tokens ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Acl:
    """account -> [(repository pattern, actions)]; the account "anonymous" is everyone without credentials.

    Without a file, every htpasswd user has every right and anonymous has none.
    """

    rules: Mapping[str, tuple[tuple[str, frozenset[str]], ...]] | None

    @classmethod
    def load(cls, path: Path | None) -> Acl:
        if path is None:
            return cls(None)
        raw = json.loads(path.read_text())
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"{path}: expected an object of account -> {{pattern: [actions]}}")
        rules: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        for account, patterns in raw.items():
            if not isinstance(patterns, Mapping):
                raise InvalidArgument(f"{path}: rules of {account!r} must be an object")
            entries = []
            for pattern, actions in patterns.items():
                if not isinstance(actions, list) or not set(actions) <= {*ACTIONS, "*"}:
                    raise InvalidArgument(f"{path}: {account}/{pattern}: actions must be a list of {ACTIONS}")
                entries.append((str(pattern), frozenset(ACTIONS if "*" in actions else actions)))
            rules[str(account)] = tuple(entries)
        return cls(rules)

    def allowed(self, account: str, access: Access) -> tuple[str, ...]:
        if access.type == "registry":
            # the catalog: for accounts that may pull every repository ("*")
            if self.rules is None:
                return access.actions if account != ANONYMOUS else ()
            everywhere = {a for pat, acts in self.rules.get(account, ()) if pat == "*" for a in acts}
            return access.actions if "pull" in everywhere else ()
        # "*" (skopeo asks for it to delete) means every action this account has on the repository
        wanted = ACTIONS if "*" in access.actions else access.actions
        if self.rules is None:
            return wanted if account != ANONYMOUS else ()
        granted: set[str] = set()
        for pattern, actions in self.rules.get(account, ()):
            if fnmatch.fnmatchcase(access.name, pattern):
                granted |= actions
        return tuple(a for a in wanted if a in granted)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuth:
    """Bearer tokens issued by this server's /token endpoint; rights come from the Acl."""

    def __init__(self, htpasswd: Htpasswd, acl: Acl, realm: str, service: str,
                 secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._htpasswd = htpasswd
        self._acl = acl
        self.realm = realm
        self.service = service
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock

    # issuing

    def issue(self, authorization: str | None, scopes: list[Access]) -> dict[str, Any]:
        """The token endpoint's answer; RegistryError(UNAUTHORIZED) for wrong credentials."""
        creds = parse_basic(authorization)
        if creds is None and authorization:
            raise RegistryError(ErrorCode.UNAUTHORIZED, "the token endpoint takes Basic credentials")
        if creds is not None and not self._htpasswd.check(*creds):
            raise RegistryError(ErrorCode.UNAUTHORIZED, "invalid username or password")
        account = creds[0] if creds is not None else ANONYMOUS
        access = []
        for want in scopes:
            granted = self._acl.allowed(account, want)
            if granted:
                access.append({"type": want.type, "name": want.name, "actions": list(granted)})
        now = int(self._clock())
        claims = {"iss": "berth-registry", "sub": account, "aud": self.service, "iat": now, "nbf": now - 5,
                  "exp": now + TOKEN_TTL, "jti": secrets.token_hex(8), "access": access}
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        token = f"{head}.{body}.{sig}"
        return {"token": token, "access_token": token, "expires_in": TOKEN_TTL,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}

    # checking

    def _claims(self, token: str) -> Mapping[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        want = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, Mapping) or claims.get("aud") != self.service:
            return None
        now = self._clock()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now or claims.get("nbf", 0) > now:
            return None
        return claims

    def authorize(self, authorization: str | None, needs: Access) -> str:
        claims = None
        if authorization and authorization.lower().startswith("bearer "):
            claims = self._claims(authorization[7:].strip())
        if claims is None:
            raise RegistryError(ErrorCode.UNAUTHORIZED, "authentication required" if not authorization
                                else "invalid or expired token")
        granted: set[str] = set()
        for entry in claims.get("access") or ():
            if isinstance(entry, Mapping) and entry.get("type") == needs.type and entry.get("name") == needs.name:
                granted |= set(entry.get("actions") or ())
        missing = [a for a in needs.actions if a not in granted and not (needs.type == "registry" and granted)]
        if missing:
            # 401, not 403: the challenge names the scope, so a client can ask for a token that has it
            raise RegistryError(ErrorCode.UNAUTHORIZED,
                                f"{claims.get('sub')} may not {','.join(missing)} {needs.name}")
        return str(claims.get("sub"))

    def browse(self, authorization: str | None, needs: Access) -> str:
        """Basic credentials checked directly against the users and the Acl (the web UI's way in)."""
        creds = parse_basic(authorization)
        if creds is not None and not self._htpasswd.check(*creds):
            raise RegistryError(ErrorCode.UNAUTHORIZED, "invalid username or password")
        account = creds[0] if creds is not None else ANONYMOUS
        granted = self._acl.allowed(account, needs)
        if not set(needs.actions) <= set(granted):
            raise RegistryError(ErrorCode.UNAUTHORIZED, f"{account} may not {','.join(needs.actions)} {needs.name}")
        return account

    def challenge(self, needs: Access) -> str:
        out = f'Bearer realm="{self.realm}",service="{self.service}"'
        if needs.actions:
            out += f',scope="{needs.scope()}"'
        return out
