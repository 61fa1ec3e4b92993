"""Hostile and malformed requests to berth's registry: 4xx with the spec's error JSON, nothing written outside
the storage root (a canary directory beside it stays empty), and the server keeps serving.

Requests go through http.client so paths reach the server byte for byte (no client-side normalisation of
`..` or percent-encoding).
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.client import push_blob, push_image, start_upload
from tests.registry.servers import RegistryServer, make_image, start_berth

HEX = "a" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, Path]]:
    work = tmp_path_factory.mktemp("hostile")
    canary = work / "canary"
    canary.mkdir()
    (work / "berth-root").mkdir()
    with start_berth(work) as s:
        push_image(s, "good/repo", make_image([{"f": b"x"}]), "v1")
        yield s, work


def raw(server: RegistryServer, method: str, path: str, body: bytes = b"",
        headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    host, port = server.host.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for k, v in {**(headers or {}), "Content-Length": str(len(body))}.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def codes(body: bytes) -> list[str]:
    parsed = json.loads(body)
    return [e["code"] for e in parsed["errors"]]


def files_outside_root(work: Path) -> list[str]:
    found = []
    for dirpath, _, files in os.walk(work):
        rel = os.path.relpath(dirpath, work)
        if rel == "berth-root" or rel.startswith("berth-root" + os.sep):
            continue
        found += [os.path.join(rel, f) for f in files if not f.endswith(".log")]
    return sorted(found)


BAD_NAMES = ["UPPER/case", "a//b", "-a", "a..b", "a/../b", "..", "a/%2e%2e/b", "foo%2Fbar", "foo%2fbar",
             "a/_layers", "_catalog2/x", "a" * 256, "a/b/", "%00", "a%20b", "%C3%A4"]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("suffix", ["tags/list", "manifests/latest", "blobs/sha256:" + HEX, "blobs/uploads/"])
def test_repository_names_outside_the_grammar_are_rejected(server: tuple[RegistryServer, Path], name: str,
                                                           suffix: str) -> None:
    s, work = server
    for method in ("GET", "PUT", "POST", "DELETE", "PATCH"):
        status, body, headers = raw(s, method, f"/v2/{name}/{suffix}", b"{}")
        assert 400 <= status < 500, (method, name, suffix, status)
        assert headers.get("content-type", "").startswith("application/json"), (method, name, suffix, body)
        assert codes(body)
    assert files_outside_root(work) == []


@pytest.mark.parametrize("tag", ["..", ".hidden", "-dash", "a" * 129, "a%2Fb", "%2e%2e", "t:x", "t@x"])
def test_bad_tags_are_rejected_with_error_json(server: tuple[RegistryServer, Path], tag: str) -> None:
    s, work = server
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        status, body, _ = raw(s, method, f"/v2/good/repo/manifests/{tag}", b"{}",
                              {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert 400 <= status < 500, (method, tag, status)
        if method != "HEAD":
            assert codes(body)
    assert files_outside_root(work) == []


@pytest.mark.parametrize("digest", ["sha256:xyz", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha256:" + "a" * 63,
                                    "sha256%3A" + HEX, "sha256:" + HEX + "%2F..", "..", "sha512:" + "a" * 128])
def test_bad_digests_are_digest_invalid(server: tuple[RegistryServer, Path], digest: str) -> None:
    s, _ = server
    for method, path in (("GET", f"/v2/good/repo/blobs/{digest}"), ("DELETE", f"/v2/good/repo/blobs/{digest}"),
                         ("GET", f"/v2/good/repo/referrers/{digest}")):
        status, body, _ = raw(s, method, path)
        assert status == 400 and codes(body) == ["DIGEST_INVALID"], (method, path, status, body)
    loc = start_upload(s, "good/repo")
    status, body, _ = raw(s, "PUT", loc.split(s.host, 1)[1] + f"?digest={digest}", b"data")
    assert status == 400 and codes(body) == ["DIGEST_INVALID"]


@pytest.mark.parametrize("upload", ["../../../canary/x", "..%2F..%2Fcanary%2Fx", "00000000000000000000000000000000",
                                    "not-hex", "A" * 32, "%2e%2e", "a" * 33])
def test_bad_or_unknown_upload_ids_are_blob_upload_unknown(server: tuple[RegistryServer, Path], upload: str) -> None:
    s, work = server
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        status, body, _ = raw(s, method, f"/v2/good/repo/blobs/uploads/{upload}?digest=sha256:{HEX}", b"abc")
        assert 400 <= status < 500, (method, upload, status)
        assert codes(body)
    assert files_outside_root(work) == []


def test_an_upload_id_of_another_repository_is_unknown(server: tuple[RegistryServer, Path]) -> None:
    s, _ = server
    loc = start_upload(s, "good/repo")
    upload = loc.rstrip("/").rsplit("/", 1)[1]
    status, body, _ = raw(s, "GET", f"/v2/good/other/blobs/uploads/{upload}")
    assert status == 404 and codes(body) == ["BLOB_UPLOAD_UNKNOWN"]


@pytest.mark.parametrize("n", ["-1", "abc", "1e3", "99999999999999999999999", "4294967296", "", "%201", "1.5"])
def test_bad_or_huge_n_is_pagination_number_invalid(server: tuple[RegistryServer, Path], n: str) -> None:
    s, _ = server
    for path in ("/v2/good/repo/tags/list", "/v2/_catalog"):
        status, body, _ = raw(s, "GET", f"{path}?n={n}")
        assert status == 400 and codes(body) == ["PAGINATION_NUMBER_INVALID"], (path, n, status)


def test_large_but_valid_n_returns_everything(server: tuple[RegistryServer, Path]) -> None:
    s, _ = server
    status, body, _ = raw(s, "GET", "/v2/good/repo/tags/list?n=2000000000")
    assert status == 200 and json.loads(body)["tags"] == ["v1"]


@pytest.mark.parametrize("rng", ["bytes=50-60", "bytes=10-", "bytes=5-2", "bytes=abc", "items=0-1", "bytes=-0"])
def test_unsatisfiable_ranges_are_416_or_400_with_error_json(server: tuple[RegistryServer, Path], rng: str) -> None:
    s, _ = server
    digest = push_blob(s, "good/repo", b"0123456789")
    status, body, _ = raw(s, "GET", f"/v2/good/repo/blobs/{digest}", headers={"Range": rng})
    assert status in (400, 416), (rng, status)
    assert codes(body)


def test_chunk_with_a_lying_content_length_is_rejected(server: tuple[RegistryServer, Path]) -> None:
    s, _ = server
    loc = start_upload(s, "good/repo").split(s.host, 1)[1]
    status, body, _ = raw(s, "PATCH", loc, b"0123456789", {"Content-Range": "0-99"})
    assert status == 416 and codes(body)


def test_oversized_manifest_is_413(server: tuple[RegistryServer, Path]) -> None:
    s, _ = server
    big = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 << 20) + b'"}'
    status, body, _ = raw(s, "PUT", "/v2/good/repo/manifests/big", big,
                          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 413 and codes(body) == ["SIZE_INVALID"]


@pytest.mark.parametrize("doc", [b"[]", b'{"schemaVersion": 1}', b'{"schemaVersion": 2, "layers": []}',
                                 b'{"schemaVersion": 2, "config": {"digest": "sha256:zz", "size": 1, '
                                 b'"mediaType": "x"}, "layers": []}',
                                 b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}'])
def test_malformed_manifests_are_manifest_invalid(server: tuple[RegistryServer, Path], doc: bytes) -> None:
    s, _ = server
    status, body, _ = raw(s, "PUT", "/v2/good/repo/manifests/bad", doc,
                          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 400 and codes(body) == ["MANIFEST_INVALID"]


def test_server_keeps_serving_after_all_of_it(server: tuple[RegistryServer, Path]) -> None:
    s, work = server
    assert s.alive()
    status, body, _ = raw(s, "GET", "/v2/good/repo/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["v1"]
    assert files_outside_root(work) == []
    assert list((work / "canary").iterdir()) == []
