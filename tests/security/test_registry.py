"""berth's registry server keeps nothing of a failed upload and lets a client resume after a refused chunk
(security-cases.md cases 12 and 13), over HTTP on 127.0.0.1 against `python -m berth.registry serve`:

* a monolithic and a chunked upload finished with a digest that does not match: 400 DIGEST_INVALID, the blob is
  not served, the upload session answers 404 BLOB_UPLOAD_UNKNOWN, and no session record or partial file is left
  on disk;
* an out-of-order chunk (bad Content-Range) is 416; the session still reports the offset it has, and the upload
  resumes from there and completes with the right digest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.client import error_codes, location, start_upload, url, with_query
from tests.registry.servers import RegistryServer, start_berth

OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with start_berth(tmp_path_factory.mktemp("sec-registry")) as server:
        yield server


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def leftovers(root: Path) -> list[str]:
    """Upload session records and partial ingests under the registry's root."""
    found = []
    for sub in ("uploads", "content/ingest"):
        d = root / sub
        assert d.is_dir(), f"the registry keeps no {sub}/ any more: update this test"
        found += [f"{sub}/{p.name}" for p in d.iterdir()]
    return found


def test_a_wrong_digest_on_the_final_put_leaves_nothing(registry: RegistryServer) -> None:
    repo = "sec/digest"
    data = os.urandom(70_000)
    # monolithic: POST, then PUT with all the bytes and a digest of something else
    loc = start_upload(registry, repo)
    r = registry.session.put(with_query(loc, digest=sha(b"other")), data=data, headers=OCTETS)
    assert r.status_code == 400 and "DIGEST_INVALID" in error_codes(r), r.text
    assert registry.session.get(loc).status_code == 404
    # chunked: two PATCHes, then a PUT with a wrong digest
    loc = start_upload(registry, repo)
    r = registry.session.patch(loc, data=data[:40_000], headers={**OCTETS, "Content-Range": "0-39999"})
    assert r.status_code == 202
    loc = location(registry, r)
    r = registry.session.patch(loc, data=data[40_000:], headers={**OCTETS, "Content-Range": f"40000-{len(data) - 1}"})
    assert r.status_code == 202
    loc = location(registry, r)
    r = registry.session.put(with_query(loc, digest=sha(data + b"x")), headers=OCTETS)
    assert r.status_code == 400 and "DIGEST_INVALID" in error_codes(r), r.text
    gone = registry.session.get(loc)
    assert gone.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in error_codes(gone)
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(data)}")).status_code == 404
    assert leftovers(registry.root) == []


def test_an_out_of_order_chunk_is_416_and_the_upload_resumes_from_the_offset(registry: RegistryServer) -> None:
    repo = "sec/resume"
    data = os.urandom(30_000)
    loc = start_upload(registry, repo)
    r = registry.session.patch(loc, data=data[:10_000], headers={**OCTETS, "Content-Range": "0-9999"})
    assert r.status_code == 202
    loc = location(registry, r)
    skipped = registry.session.patch(loc, data=data[20_000:], headers={**OCTETS, "Content-Range": "20000-29999"})
    assert skipped.status_code == 416, skipped.text
    status = registry.session.get(loc)
    assert status.status_code == 204 and status.headers["Range"] == "0-9999", status.headers
    r = registry.session.patch(loc, data=data[10_000:], headers={**OCTETS, "Content-Range": "10000-29999"})
    assert r.status_code == 202, r.text
    r = registry.session.put(with_query(location(registry, r), digest=sha(data)), headers=OCTETS)
    assert r.status_code == 201, r.text
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(data)}")).content == data
    assert leftovers(registry.root) == []
