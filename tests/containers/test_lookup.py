"""How a container is named in a request: full id, name (with or without '/'), or a unique id prefix, as dockerd
resolves them; a name wins over another container's id prefix, and an ambiguous prefix is an error."""

from __future__ import annotations

import json

from tests.berthd import PrivateBerthd
from tests.containers.extra_daemon import b  # noqa: F401


def _id(daemon: PrivateBerthd, ref: str) -> tuple[int, str]:
    status, body = daemon.api("GET", f"/containers/{ref}/json")
    return status, json.loads(body).get("Id", "") if status == 200 else body.decode()


def test_full_id_name_and_unique_prefix(b: PrivateBerthd) -> None:  # noqa: F811
    ids = {}
    for name in ("look-a", "look-b"):
        ids[name] = b.docker("create", "--name", name, "busybox", "true").stdout.decode().strip()
    a = ids["look-a"]
    assert _id(b, a) == (200, a)
    assert _id(b, "look-a") == (200, a) and _id(b, "%2Flook-a") == (200, a)
    unique = next(a[:n] for n in range(1, 65) if not ids["look-b"].startswith(a[:n]))
    assert _id(b, unique) == (200, a)
    status, text = _id(b, "look-zzz")
    assert status == 404 and "No such container: look-zzz" in text
    # a container named like the other's id prefix: the name wins, as in dockerd
    named = b.docker("create", "--name", ids["look-b"][:12], "busybox", "true").stdout.decode().strip()
    assert _id(b, ids["look-b"][:12]) == (200, named)
    assert _id(b, ids["look-b"][:13]) == (200, ids["look-b"])
    b.docker("rm", "look-a", "look-b", named)


def test_an_ambiguous_prefix_is_refused(b: PrivateBerthd) -> None:  # noqa: F811
    seen: dict[str, str] = {}
    made = []
    while True:      # at most 17 containers until two ids share a first digit
        cid = b.docker("create", "busybox", "true").stdout.decode().strip()
        made.append(cid)
        if cid[0] in seen:
            break
        seen[cid[0]] = cid
    try:
        status, text = _id(b, cid[0])
        assert status == 400 and "multiple IDs found with provided prefix" in text, (status, text)
        assert _id(b, cid[:20]) == (200, cid)
    finally:
        b.docker("rm", *made)
