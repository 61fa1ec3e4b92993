"""The OCI distribution spec v1.1 conformance checklist (pull, push, content discovery, content management),
run against berth's registry AND Debian's docker-registry (distribution 2.8), so each test is itself checked
against the reference. Where the spec is stricter than distribution 2.8, the test is marked xfail(strict)
for docker-registry only, with the reason: it must really fail there, and must pass on berth.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.registry.client import (
    error_codes,
    location,
    push_blob,
    push_image,
    push_manifest,
    start_upload,
    url,
    with_query,
)
from tests.registry.servers import Blob, RegistryServer, make_image

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def stricter_than_distribution(request: pytest.FixtureRequest, registry: RegistryServer, reason: str) -> None:
    if registry.kind == "docker-registry":
        request.applymarker(pytest.mark.xfail(reason=f"distribution 2.8: {reason}", strict=True))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def image() -> object:
    return make_image([{"etc/hello": b"hello world\n"}, {"bin/tool": os.urandom(3000)}])


# -- pull ---------------------------------------------------------------------------------------------

def test_base_endpoint_answers_200(registry: RegistryServer) -> None:
    r = registry.session.get(url(registry, "/v2/"))
    assert r.status_code == 200


def test_pull_manifest_by_tag_and_by_digest(registry: RegistryServer, repo: str, image: object) -> None:
    img = make_image([{"a": b"a"}])
    push_image(registry, repo, img, "v1")
    for ref in ("v1", img.manifest.digest):
        r = registry.session.get(url(registry, f"/v2/{repo}/manifests/{ref}"), headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content == img.manifest.data
        assert r.headers["Docker-Content-Digest"] == img.manifest.digest
        assert r.headers["Content-Type"].split(";")[0] == OCI_MANIFEST


def test_head_manifest_has_length_and_digest_and_no_body(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"a": b"head"}])
    push_image(registry, repo, img, "v1")
    for ref in ("v1", img.manifest.digest):
        r = registry.session.head(url(registry, f"/v2/{repo}/manifests/{ref}"), headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == len(img.manifest.data)
        assert r.headers["Docker-Content-Digest"] == img.manifest.digest
        assert r.content == b""


def test_unknown_manifest_is_404_manifest_unknown(registry: RegistryServer, repo: str) -> None:
    push_image(registry, repo, make_image([{"a": b"x"}]), "v1")
    for ref in ("nope", sha(b"no such manifest")):
        r = registry.session.get(url(registry, f"/v2/{repo}/manifests/{ref}"), headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 404
        assert "MANIFEST_UNKNOWN" in error_codes(r)
    r = registry.session.head(url(registry, f"/v2/{repo}/manifests/nope"))
    assert r.status_code == 404


def test_pull_blob_get_and_head(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(70_000)
    digest = push_blob(registry, repo, data)
    r = registry.session.get(url(registry, f"/v2/{repo}/blobs/{digest}"))
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["Docker-Content-Digest"] == digest
    r = registry.session.head(url(registry, f"/v2/{repo}/blobs/{digest}"))
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(data)
    assert r.headers["Docker-Content-Digest"] == digest


def test_unknown_blob_is_404_blob_unknown(registry: RegistryServer, repo: str) -> None:
    push_blob(registry, repo, b"something")
    r = registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(b'absent')}"))
    assert r.status_code == 404
    assert "BLOB_UNKNOWN" in error_codes(r)
    assert registry.session.head(url(registry, f"/v2/{repo}/blobs/{sha(b'absent')}")).status_code == 404


def test_blob_range_request_returns_206_with_the_bytes(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(10_000)
    digest = push_blob(registry, repo, data)
    r = registry.session.get(url(registry, f"/v2/{repo}/blobs/{digest}"), headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206
    assert r.content == data[100:1100]
    r = registry.session.get(url(registry, f"/v2/{repo}/blobs/{digest}"), headers={"Range": "bytes=9000-"})
    assert r.status_code == 206
    assert r.content == data[9000:]


def test_blob_range_beyond_the_end_is_416(registry: RegistryServer, repo: str) -> None:
    digest = push_blob(registry, repo, b"0123456789")
    # stream: distribution 2.8 announces a 10-byte body on its 416 and sends less
    r = registry.session.get(url(registry, f"/v2/{repo}/blobs/{digest}"), headers={"Range": "bytes=50-60"},
                             stream=True)
    assert r.status_code == 416
    r.close()


def test_a_blob_of_one_repository_is_not_served_from_another(registry: RegistryServer, repo: str) -> None:
    digest = push_blob(registry, repo, os.urandom(100))
    r = registry.session.get(url(registry, f"/v2/{repo}-other/blobs/{digest}"))
    assert r.status_code == 404


# -- push ---------------------------------------------------------------------------------------------

def test_push_monolithic_post_then_put(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(123_456)
    loc = start_upload(registry, repo)
    r = registry.session.put(with_query(loc, digest=sha(data)), data=data,
                             headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201
    assert r.headers["Location"]
    assert r.headers["Docker-Content-Digest"] == sha(data)
    assert registry.session.get(location(registry, r)).content == data


def test_push_monolithic_single_post(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(5000)
    r = registry.session.post(url(registry, f"/v2/{repo}/blobs/uploads/?digest={sha(data)}"), data=data,
                              headers={"Content-Type": "application/octet-stream"})
    # The spec lets a registry decline the single-request form with a 202 and an upload session.
    assert r.status_code in (201, 202)
    if r.status_code == 202:
        r = registry.session.put(with_query(location(registry, r), digest=sha(data)), data=data)
        assert r.status_code == 201
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(data)}")).content == data


def test_push_chunked_with_content_range_and_status(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(300_000)
    chunks = [data[:100_000], data[100_000:250_000], data[250_000:]]
    loc = start_upload(registry, repo)
    offset = 0
    for chunk in chunks[:2]:
        r = registry.session.patch(loc, data=chunk, headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert r.status_code == 202, r.text
        offset += len(chunk)
        assert r.headers["Range"] == f"0-{offset - 1}"
        loc = location(registry, r)
        status = registry.session.get(loc)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
    r = registry.session.put(with_query(loc, digest=sha(data)), data=chunks[2], headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(len(chunks[2])),
        "Content-Range": f"{offset}-{len(data) - 1}"})
    assert r.status_code == 201, r.text
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(data)}")).content == data


def test_push_streamed_patch_without_content_range(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(200_000)
    loc = start_upload(registry, repo)
    r = registry.session.patch(loc, data=iter([data[:70_000], data[70_000:]]),
                               headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    r = registry.session.put(with_query(location(registry, r), digest=sha(data)))
    assert r.status_code == 201, r.text
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(data)}")).content == data


def test_out_of_order_chunk_is_416(request: pytest.FixtureRequest, registry: RegistryServer, repo: str) -> None:
    stricter_than_distribution(request, registry, "answers an out-of-order chunk with 400, not 416")
    loc = start_upload(registry, repo)
    r = registry.session.patch(loc, data=b"a" * 10, headers={"Content-Range": "0-9", "Content-Length": "10",
                                                              "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    r = registry.session.patch(location(registry, r), data=b"b" * 10, headers={
        "Content-Range": "20-29", "Content-Length": "10", "Content-Type": "application/octet-stream"})
    assert r.status_code == 416


def test_put_with_the_wrong_digest_is_400_digest_invalid(registry: RegistryServer, repo: str) -> None:
    loc = start_upload(registry, repo)
    r = registry.session.put(with_query(loc, digest=sha(b"other")), data=b"actual bytes",
                             headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400
    assert "DIGEST_INVALID" in error_codes(r)
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{sha(b'actual bytes')}")).status_code == 404


def test_empty_blob_can_be_pushed_and_pulled(registry: RegistryServer, repo: str) -> None:
    digest = push_blob(registry, repo, b"")
    r = registry.session.get(url(registry, f"/v2/{repo}/blobs/{digest}"))
    assert r.status_code == 200
    assert r.content == b""


def test_cross_repository_mount(registry: RegistryServer, repo: str) -> None:
    data = os.urandom(4000)
    digest = push_blob(registry, repo, data)
    r = registry.session.post(url(registry, f"/v2/{repo}-mounted/blobs/uploads/?mount={digest}&from={repo}"))
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert registry.session.get(url(registry, f"/v2/{repo}-mounted/blobs/{digest}")).content == data


def test_mount_of_an_unknown_blob_falls_back_to_an_upload_session(registry: RegistryServer, repo: str) -> None:
    r = registry.session.post(url(registry, f"/v2/{repo}/blobs/uploads/?mount={sha(b'nowhere')}&from={repo}-x"))
    assert r.status_code == 202
    assert r.headers["Location"]


def test_cancelled_upload_is_gone(registry: RegistryServer, repo: str) -> None:
    loc = start_upload(registry, repo)
    r = registry.session.patch(loc, data=b"partial", headers={"Content-Type": "application/octet-stream"})
    loc = location(registry, r)
    assert registry.session.delete(loc).status_code == 204
    r = registry.session.get(loc)
    assert r.status_code == 404
    assert "BLOB_UPLOAD_UNKNOWN" in error_codes(r)


def test_push_manifest_by_tag_and_by_digest(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"f": b"by tag"}])
    r = push_image(registry, repo, img, "v1")
    assert r.headers["Docker-Content-Digest"] == img.manifest.digest
    assert r.headers["Location"]
    img2 = make_image([{"f": b"by digest"}])
    for b in img2.blobs:
        push_blob(registry, repo, b)
    r = push_manifest(registry, repo, img2.manifest.digest, img2.manifest)
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == img2.manifest.digest


def test_manifest_with_missing_blobs_is_400_manifest_blob_unknown(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"f": b"missing"}])
    push_blob(registry, repo, img.config)
    r = push_manifest(registry, repo, "v1", img.manifest)
    assert r.status_code == 400
    assert "MANIFEST_BLOB_UNKNOWN" in error_codes(r)


def test_invalid_manifest_is_400_manifest_invalid(registry: RegistryServer, repo: str) -> None:
    r = push_manifest(registry, repo, "v1", b"{not json")
    assert r.status_code == 400
    assert "MANIFEST_INVALID" in error_codes(r)


def test_manifest_put_by_digest_that_does_not_match_is_400(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"f": b"mismatch"}])
    for b in img.blobs:
        push_blob(registry, repo, b)
    r = push_manifest(registry, repo, sha(b"something else"), img.manifest)
    assert r.status_code == 400
    assert "DIGEST_INVALID" in error_codes(r)


def test_docker_schema2_manifest_round_trips_with_its_media_type(registry: RegistryServer, repo: str) -> None:
    config = Blob("application/vnd.docker.container.image.v1+json",
                  b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
    layer = Blob("application/vnd.docker.image.rootfs.diff.tar.gzip", os.urandom(500))
    for b in (config, layer):
        push_blob(registry, repo, b)
    manifest = Blob(DOCKER_MANIFEST, json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                                                 "config": config.descriptor(),
                                                 "layers": [layer.descriptor()]}, indent=3).encode())
    assert push_manifest(registry, repo, "docker", manifest).status_code == 201
    r = registry.session.get(url(registry, f"/v2/{repo}/manifests/docker"), headers={"Accept": DOCKER_MANIFEST})
    assert r.headers["Content-Type"].split(";")[0] == DOCKER_MANIFEST
    assert r.content == manifest.data


def test_image_index_round_trips(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"f": b"index child"}])
    push_image(registry, repo, img, "child")
    index = Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**img.manifest.descriptor(), "platform": {"os": "linux", "architecture": "amd64"}}]}).encode())
    assert push_manifest(registry, repo, "multi", index).status_code == 201
    r = registry.session.get(url(registry, f"/v2/{repo}/manifests/multi"), headers={"Accept": OCI_INDEX})
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == OCI_INDEX
    assert r.headers["Docker-Content-Digest"] == index.digest


def test_index_with_an_unknown_child_manifest_is_rejected(registry: RegistryServer, repo: str) -> None:
    index = Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"no child"), "size": 10}]}).encode())
    r = push_manifest(registry, repo, "multi", index)
    assert r.status_code == 400
    assert set(error_codes(r)) & {"MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"}


def test_retagging_moves_the_tag(registry: RegistryServer, repo: str) -> None:
    a, b = make_image([{"f": b"first"}]), make_image([{"f": b"second"}])
    push_image(registry, repo, a, "latest")
    push_image(registry, repo, b, "latest")
    r = registry.session.get(url(registry, f"/v2/{repo}/manifests/latest"), headers={"Accept": OCI_MANIFEST})
    assert r.headers["Docker-Content-Digest"] == b.manifest.digest
    assert registry.session.get(url(registry, f"/v2/{repo}/manifests/{a.manifest.digest}"),
                                headers={"Accept": OCI_MANIFEST}).status_code == 200


# -- content discovery --------------------------------------------------------------------------------

TAGS = ["v10", "v9", "A", "a", "latest", "1.0", "_x", "Z-9", "v1.2.3"]


def _push_tags(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"f": b"tags"}])
    for b in img.blobs:
        push_blob(registry, repo, b)
    for tag in TAGS:
        assert push_manifest(registry, repo, tag, img.manifest).status_code == 201


def test_tags_list_has_every_tag(registry: RegistryServer, repo: str) -> None:
    _push_tags(registry, repo)
    r = registry.session.get(url(registry, f"/v2/{repo}/tags/list"))
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == repo
    assert sorted(body["tags"]) == sorted(TAGS)


def test_tags_list_is_in_lexical_order(request: pytest.FixtureRequest, registry: RegistryServer, repo: str) -> None:
    stricter_than_distribution(request, registry, "lists tags in its storage order, not lexical order")
    _push_tags(registry, repo)
    assert registry.session.get(url(registry, f"/v2/{repo}/tags/list")).json()["tags"] == sorted(TAGS)


def test_tags_list_pages_with_n_and_last(request: pytest.FixtureRequest, registry: RegistryServer, repo: str) -> None:
    stricter_than_distribution(request, registry, "pages tags with n/last in storage order, not lexical order")
    _push_tags(registry, repo)
    want = sorted(TAGS)
    r = registry.session.get(url(registry, f"/v2/{repo}/tags/list?n=4"))
    assert r.json()["tags"] == want[:4]
    assert f"last={want[3]}" in r.headers["Link"]
    assert 'rel="next"' in r.headers["Link"]
    r = registry.session.get(url(registry, f"/v2/{repo}/tags/list?n=4&last={want[3]}"))
    assert r.json()["tags"] == want[4:8]
    r = registry.session.get(url(registry, f"/v2/{repo}/tags/list?n=4&last={want[7]}"))
    assert r.json()["tags"] == want[8:]
    assert "Link" not in r.headers
    r = registry.session.get(url(registry, f"/v2/{repo}/tags/list?last={want[5]}"))
    assert r.json()["tags"] == want[6:]


def test_tags_of_an_unknown_repository_is_404_name_unknown(registry: RegistryServer, repo: str) -> None:
    r = registry.session.get(url(registry, f"/v2/{repo}/tags/list"))
    assert r.status_code == 404
    assert "NAME_UNKNOWN" in error_codes(r)


def test_catalog_lists_pushed_repositories(registry: RegistryServer, repo: str) -> None:
    push_image(registry, repo, make_image([{"f": b"catalog"}]), "v1")
    r = registry.session.get(url(registry, "/v2/_catalog"))
    assert r.status_code == 200
    assert repo in r.json()["repositories"]
    assert r.json()["repositories"] == sorted(r.json()["repositories"])


def _artifact(subject: Blob, artifact_type: str, config: Blob) -> Blob:
    return Blob(OCI_MANIFEST, json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.digest, "size": 2}],
        "subject": subject.descriptor(), "annotations": {"org.example.kind": artifact_type}}).encode())


def test_referrers_api_lists_manifests_with_a_subject(request: pytest.FixtureRequest, registry: RegistryServer,
                                                       repo: str) -> None:
    stricter_than_distribution(request, registry, "has no referrers API (OCI distribution spec 1.1)")
    img = make_image([{"f": b"subject"}])
    push_image(registry, repo, img, "v1")
    empty = Blob("application/vnd.oci.empty.v1+json", b"{}")
    push_blob(registry, repo, empty)
    sig = _artifact(img.manifest, "application/vnd.example.signature", empty)
    sbom = _artifact(img.manifest, "application/vnd.example.sbom", empty)
    for art in (sig, sbom):
        r = push_manifest(registry, repo, art.digest, art)
        assert r.status_code == 201
        assert r.headers.get("OCI-Subject") == img.manifest.digest
    r = registry.session.get(url(registry, f"/v2/{repo}/referrers/{img.manifest.digest}"))
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == OCI_INDEX
    found = {d["digest"]: d for d in r.json()["manifests"]}
    assert set(found) == {sig.digest, sbom.digest}
    assert found[sig.digest]["artifactType"] == "application/vnd.example.signature"
    assert found[sig.digest]["size"] == len(sig.data)
    assert found[sig.digest]["annotations"] == {"org.example.kind": "application/vnd.example.signature"}
    r = registry.session.get(url(registry, f"/v2/{repo}/referrers/{img.manifest.digest}"
                                           f"?artifactType=application/vnd.example.sbom"))
    assert [d["digest"] for d in r.json()["manifests"]] == [sbom.digest]
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert registry.session.delete(url(registry, f"/v2/{repo}/manifests/{sig.digest}")).status_code == 202
    r = registry.session.get(url(registry, f"/v2/{repo}/referrers/{img.manifest.digest}"))
    assert [d["digest"] for d in r.json()["manifests"]] == [sbom.digest]
    r = registry.session.get(url(registry, f"/v2/{repo}/referrers/{sha(b'nothing refers here')}"))
    assert r.status_code == 200
    assert r.json()["manifests"] == []


# -- content management -------------------------------------------------------------------------------

def test_delete_manifest_by_digest(registry: RegistryServer, repo: str) -> None:
    img = make_image([{"f": b"delete me"}])
    push_image(registry, repo, img, "v1")
    r = registry.session.delete(url(registry, f"/v2/{repo}/manifests/{img.manifest.digest}"))
    assert r.status_code == 202
    for ref in (img.manifest.digest, "v1"):
        r = registry.session.get(url(registry, f"/v2/{repo}/manifests/{ref}"), headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 404


def test_delete_tag(request: pytest.FixtureRequest, registry: RegistryServer, repo: str) -> None:
    stricter_than_distribution(request, registry, "refuses DELETE of a manifest by tag")
    img = make_image([{"f": b"untag"}])
    push_image(registry, repo, img, "v1")
    push_manifest(registry, repo, "v2", img.manifest)
    r = registry.session.delete(url(registry, f"/v2/{repo}/manifests/v1"))
    assert r.status_code == 202
    assert registry.session.get(url(registry, f"/v2/{repo}/manifests/v1"),
                                headers={"Accept": OCI_MANIFEST}).status_code == 404
    assert registry.session.get(url(registry, f"/v2/{repo}/manifests/v2"),
                                headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_delete_unknown_manifest_is_404(registry: RegistryServer, repo: str) -> None:
    push_image(registry, repo, make_image([{"f": b"x"}]), "v1")
    r = registry.session.delete(url(registry, f"/v2/{repo}/manifests/{sha(b'not here')}"))
    assert r.status_code == 404
    assert "MANIFEST_UNKNOWN" in error_codes(r)


def test_delete_blob(registry: RegistryServer, repo: str) -> None:
    digest = push_blob(registry, repo, os.urandom(999))
    r = registry.session.delete(url(registry, f"/v2/{repo}/blobs/{digest}"))
    assert r.status_code == 202
    assert registry.session.get(url(registry, f"/v2/{repo}/blobs/{digest}")).status_code == 404
    r = registry.session.delete(url(registry, f"/v2/{repo}/blobs/{digest}"))
    assert r.status_code == 404
    assert "BLOB_UNKNOWN" in error_codes(r)
