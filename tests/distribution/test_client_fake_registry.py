"""The registry client against a registry that misbehaves on request (tests/distribution/fake.py).

Verification (lying blobs and manifests, truncation, oversized manifests), resume with Range, one download for
concurrent pulls, index platform choice, credentials kept off other hosts, Basic and Bearer auth, pushes.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import zstandard

from berth.content.store import BlobStore
from berth.distribution.client import Registry
from berth.distribution.credentials import AuthConfig
from berth.distribution.hosts import RegistryHosts
from berth.distribution.progress import Progress, Step
from berth.distribution.pull import Puller, PullResult
from berth.distribution.push import Format, Pusher
from berth.errors import DigestMismatch, LimitExceeded, NotFound, Unauthorized, Unavailable
from berth.oci.descriptor import Platform
from berth.oci.digest import Digest
from berth.oci.manifest import Manifest
from berth.oci.mediatype import MediaType
from berth.oci.reference import Reference
from tests.distribution.fake import OCI_INDEX, FakeRegistry, sha
from tests.images.archives import simple_layer

T = TypeVar("T")
HOSTS = RegistryHosts.create(certs_dirs=())


def run(coro: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro())  # type: ignore[arg-type]


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


LAYER_A = simple_layer({"a.txt": b"a" * 5000})
LAYER_B = simple_layer({"b.txt": b"b" * 300_000})


async def pull(reg: FakeRegistry, store: BlobStore, ref: str, auth: AuthConfig | None = None,
               platform: Platform | None = None, events: list[Progress] | None = None,
               attempts: int = 4) -> PullResult:
    async with Registry(HOSTS, reg.address, auth) as client:
        with store.lease() as lease:
            puller = Puller(client, store, lease, (events.append if events is not None else lambda _: None),
                            attempts=attempts, retry_delay=0.01)
            return await puller.pull(Reference.parse(f"{reg.address}/{ref}"), platform)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "content")


def test_pull_by_tag_fetches_every_blob_verified_and_commits_the_manifest_last(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("team/app", "1", [gz(LAYER_A), LAYER_B])
            events: list[Progress] = []
            result = await pull(reg, store, "team/app:1", events=events)
            assert str(result.manifest) == digest == str(result.repo_digest)
            for d in (result.manifest, result.config, *(layer.digest for layer in result.layers)):
                assert store.has(d)
            assert set(result.downloaded) == {layer.digest for layer in result.layers}
            steps = {(e.step, e.id) for e in events}
            for layer in result.layers:
                assert (Step.PULLING_FS_LAYER, layer.digest.short) in steps
                assert (Step.DOWNLOAD_COMPLETE, layer.digest.short) in steps
            again = await pull(reg, store, "team/app:1")
            assert again.downloaded == ()
            assert all(n == 1 for n in reg.blob_gets.values())
    run(main)


def test_pull_by_digest_and_zstd_and_plain_layers(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            zlayer = zstandard.ZstdCompressor().compress(LAYER_A)
            digest = reg.add_image("z/app", None, [zlayer], layer_type=MediaType.OCI_LAYER_ZSTD,
                                   diff_ids=[sha(LAYER_A)])
            result = await pull(reg, store, f"z/app@{digest}")
            assert store.read_bytes(result.layers[0].digest, 1 << 20) == zlayer
            missing = await asyncio.gather(pull(reg, store, "z/app:nope"), return_exceptions=True)
            assert isinstance(missing[0], NotFound) and "manifest unknown" in str(missing[0])
    run(main)


def _index(reg: FakeRegistry, repo: str) -> dict[str, str]:
    digests = {arch: reg.add_image(repo, None, [simple_layer({f"{arch}.txt": arch.encode()})], arch=arch)
               for arch in ("arm64", "amd64", "s390x")}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": MediaType.OCI_MANIFEST, "digest": digests[a], "size": len(reg.manifests[(repo, digests[a])][0]),
         "platform": {"os": "linux", "architecture": a, **({"variant": "v8"} if a == "arm64" else {})}}
        for a in digests]}
    digests["index"] = reg.add_manifest(repo, "multi", json.dumps(index).encode(), OCI_INDEX)
    return digests


def test_an_index_is_resolved_to_the_hosts_platform_or_the_one_asked_for(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digests = _index(reg, "multi/app")
            host = await pull(reg, store, "multi/app:multi")
            assert str(host.manifest) == digests[Platform.host().architecture]
            assert str(host.repo_digest) == digests["index"]
            arm = await pull(reg, store, "multi/app:multi", platform=Platform.parse("linux/arm64"))
            assert str(arm.manifest) == digests["arm64"]
            with pytest.raises(NotFound, match="linux/riscv64"):
                await pull(reg, store, "multi/app:multi", platform=Platform.parse("linux/riscv64"))
            with pytest.raises(NotFound, match="does not match"):
                await pull(reg, store, f"multi/app@{digests['s390x']}", platform=Platform.parse("linux/amd64"))
    run(main)


def test_a_blob_whose_bytes_do_not_match_its_digest_is_refused_and_nothing_is_kept(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("bad/app", "1", [LAYER_A, LAYER_B])
            manifest = Manifest.parse(reg.manifests[("bad/app", digest)][0])
            bad = str(manifest.layers[1].digest)
            reg.behaviour.corrupt.add(bad)
            with pytest.raises(DigestMismatch, match=bad):
                await pull(reg, store, "bad/app:1")
            assert not store.has(Digest.parse(bad))
            assert not store.has(Digest.parse(digest))          # the manifest was never committed
            assert not (store.root / "ingest" / bad).exists()    # no partial of the lying blob
            reg.behaviour.corrupt.clear()
            result = await pull(reg, store, "bad/app:1")
            assert store.has(result.manifest)
    run(main)


def test_a_manifest_whose_digest_lies_is_refused(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("lie/app", "1", [LAYER_A])
            reg.behaviour.lie_manifest_digest = True
            with pytest.raises(DigestMismatch, match="hashes to " + digest):
                await pull(reg, store, "lie/app:1")
            assert list(store.walk()) == []
            # by digest, a registry serving other bytes under a digest is caught without any header
            other = reg.add_image("lie/app", None, [LAYER_B])
            reg.manifests[("lie/app", digest)] = reg.manifests[("lie/app", other)]
            reg.behaviour.lie_manifest_digest = False
            with pytest.raises(DigestMismatch, match=digest):
                await pull(reg, store, f"lie/app@{digest}")
            assert list(store.walk()) == []
    run(main)


def test_a_manifest_over_4_mib_is_refused(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("big/app", "1", [LAYER_A])
            data, mt = reg.manifests[("big/app", digest)]
            raw = json.loads(data)
            raw["annotations"] = {"pad": "x" * (4 << 20)}
            big = reg.add_manifest("big/app", "1", json.dumps(raw).encode(), mt)
            with pytest.raises(LimitExceeded, match="big/app:1"):
                await pull(reg, store, "big/app:1")
            with pytest.raises(LimitExceeded, match=big):
                await pull(reg, store, f"big/app@{big}")
            assert list(store.walk()) == []
    run(main)


def test_an_interrupted_download_resumes_with_range(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("cut/app", "1", [LAYER_B])
            layer = str(Manifest.parse(reg.manifests[("cut/app", digest)][0]).layers[0].digest)
            reg.behaviour.truncate[layer] = 1
            result = await pull(reg, store, "cut/app:1")
            assert store.has(result.layers[0].digest)
            ranges = [s.headers.get("Range") for s in reg.seen if s.path.endswith(layer)]
            assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    run(main)


def test_a_download_cut_short_every_time_fails_naming_the_digest_and_the_next_pull_resumes(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("cut/app", "1", [LAYER_B])
            layer = str(Manifest.parse(reg.manifests[("cut/app", digest)][0]).layers[0].digest)
            reg.behaviour.truncate[layer] = 2
            with pytest.raises(Unavailable, match=layer):
                await pull(reg, store, "cut/app:1", attempts=2)
            assert not store.has(Digest.parse(layer)) and not store.has(Digest.parse(digest))
            partial = store.root / "ingest" / layer
            assert 0 < partial.stat().st_size < len(LAYER_B)
            await pull(reg, store, "cut/app:1")
            assert store.has(Digest.parse(layer))
            last = [s.headers.get("Range") for s in reg.seen if s.path.endswith(layer)][-1]
            assert last == f"bytes={partial_size_hint(last)}-"
    run(main)


def partial_size_hint(header: str | None) -> str:
    assert header is not None
    return header.removeprefix("bytes=").rstrip("-")


def test_a_server_ignoring_range_makes_the_download_start_over(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            digest = reg.add_image("cut/app", "1", [LAYER_B])
            reg.behaviour.truncate[str(Manifest.parse(reg.manifests[("cut/app", digest)][0]).layers[0].digest)] = 1
            reg.behaviour.ignore_range = True
            result = await pull(reg, store, "cut/app:1")
            assert store.read_bytes(result.layers[0].digest, 1 << 20) == LAYER_B
    run(main)


def test_five_concurrent_pulls_of_one_image_download_each_blob_once(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            reg.add_image("many/app", "1", [LAYER_A, LAYER_B, gz(LAYER_B)])
            reg.behaviour.blob_delay = 0.2
            results = await asyncio.gather(*(pull(reg, store, "many/app:1") for _ in range(5)))
            assert len({r.manifest for r in results}) == 1
            assert reg.blob_gets and all(n == 1 for n in reg.blob_gets.values()), reg.blob_gets
            assert sum(len(r.downloaded) for r in results) == 3
    run(main)


def test_credentials_are_not_sent_to_the_host_a_blob_redirects_to(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry(auth="basic", users={"alice": "s3cret"}) as reg, \
                FakeRegistry(host="127.0.0.2") as cdn:
            cdn.blobs = reg.blobs
            reg.add_image("priv/app", "1", [LAYER_A])
            reg.behaviour.redirect_blobs_to = f"http://{cdn.address}"
            result = await pull(reg, store, "priv/app:1", auth=AuthConfig("alice", "s3cret"))
            assert store.has(result.layers[0].digest)
            assert cdn.seen, "the blob was fetched from the redirect target"
            assert all("Authorization" not in s.headers for s in cdn.seen)
            assert any("Authorization" in s.headers for s in reg.seen)
    run(main)


def test_basic_auth_wrong_password_is_unauthorized_and_login_checks_it(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry(auth="basic", users={"alice": "s3cret"}) as reg:
            reg.add_image("priv/app", "1", [LAYER_A])
            with pytest.raises(Unauthorized):
                await pull(reg, store, "priv/app:1", auth=AuthConfig("alice", "wrong"))
            with pytest.raises(Unauthorized):
                await pull(reg, store, "priv/app:1")
            async with Registry(HOSTS, reg.address, AuthConfig("alice", "wrong")) as client:
                with pytest.raises(Unauthorized, match="401"):
                    await client.check_login()
            async with Registry(HOSTS, reg.address, AuthConfig("alice", "s3cret")) as client:
                assert await client.check_login() == ""
    run(main)


def test_bearer_tokens_are_fetched_per_scope_and_refreshed_when_they_expire(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry(auth="bearer", users={"bob": "pw"}, token_ttl=6) as reg:
            reg.add_image("tok/app", "1", [LAYER_A])
            async with Registry(HOSTS, reg.address, AuthConfig("bob", "pw")) as client:
                with store.lease() as lease:
                    puller = Puller(client, store, lease)
                    await puller.pull(Reference.parse(f"{reg.address}/tok/app:1"))
                    first = len(reg.token_requests)
                    assert first == 1
                    assert "scope=repository%3Atok%2Fapp%3Apull" in reg.token_requests[0].path \
                        or "scope=repository:tok/app:pull" in reg.token_requests[0].path
                    assert reg.token_requests[0].headers.get("Authorization", "").startswith("Basic ")
                    time.sleep(1.2)   # the token is used until 5 s before it expires: 1 s here
                    await puller.resolve(Reference.parse(f"{reg.address}/tok/app:1"), None)
                    assert len(reg.token_requests) == first + 1
            async with Registry(HOSTS, reg.address, AuthConfig("bob", "nope")) as client:
                with pytest.raises(Unauthorized, match="refused the credentials"):
                    await client.check_login()
    run(main)


def test_credentials_never_go_to_a_token_realm_on_another_host(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry(host="127.0.0.2") as tokens:
            async with FakeRegistry(auth="bearer", users={"bob": "pw"},
                                    token_realm=f"http://{tokens.address}/token") as reg:
                reg.add_image("tok/app", "1", [LAYER_A])
                with pytest.raises(Unauthorized):
                    await pull(reg, store, "tok/app:1", auth=AuthConfig("bob", "pw"))
                assert tokens.token_requests, "an anonymous token was asked for"
                assert all("Authorization" not in s.headers for s in tokens.token_requests)
    run(main)


def test_anonymous_bearer_tokens_open_a_public_registry(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry(auth="bearer") as reg:
            reg.add_image("pub/app", "1", [LAYER_A])
            result = await pull(reg, store, "pub/app:1")
            assert store.has(result.manifest)
            assert all("Authorization" not in s.headers for s in reg.token_requests)
    run(main)


@pytest.mark.parametrize("chunk_size", [None, 100_000])
def test_push_uploads_missing_blobs_then_the_manifest(store: BlobStore, chunk_size: int | None) -> None:
    async def main() -> None:
        async with FakeRegistry() as src, FakeRegistry() as dst:
            src.add_image("a/app", "1", [LAYER_A, LAYER_B])
            result = await pull(src, store, "a/app:1")
            events: list[Progress] = []
            async with Registry(HOSTS, dst.address) as client:
                pusher = Pusher(client, store, events.append, chunk_size=chunk_size)
                pushed = await pusher.push(Reference.parse(f"{dst.address}/b/app:2"), result.manifest)
                assert pushed.digest == result.manifest
                assert dst.manifests[("b/app", "2")][0] == store.read_bytes(result.manifest)
                assert set(dst.blobs) == {str(d.digest) for d in result.layers} | {str(result.config)}
                assert {e.step for e in events} >= {Step.PREPARING, Step.PUSHED}
                if chunk_size:
                    assert sum(1 for s in dst.seen if s.method == "PATCH") >= 3
                events.clear()
                again = await pusher.push(Reference.parse(f"{dst.address}/b/app:3"), result.manifest)
                assert again.digest == result.manifest
                assert {e.step for e in events} == {Step.PREPARING, Step.LAYER_EXISTS}
                events.clear()
                await pusher.push(Reference.parse(f"{dst.address}/c/app:1"), result.manifest, mount_from=["b/app"])
                assert all(e.step != Step.PUSHED for e in events)
    run(main)


def test_push_with_format_docker_converts_the_media_types(store: BlobStore) -> None:
    async def main() -> None:
        async with FakeRegistry() as reg:
            reg.add_image("a/app", "1", [gz(LAYER_A)])
            result = await pull(reg, store, "a/app:1")
            async with Registry(HOSTS, reg.address) as client:
                pushed = await Pusher(client, store).push(Reference.parse(f"{reg.address}/d/app:1"),
                                                          result.manifest, Format.DOCKER)
            data, mt = reg.manifests[("d/app", "1")]
            assert mt == MediaType.DOCKER_MANIFEST and pushed.digest == Digest.of(data)
            m = Manifest.parse(data)
            assert m.config.media_type == MediaType.DOCKER_CONFIG
            assert m.layers[0].media_type == MediaType.DOCKER_LAYER_GZIP
            assert m.layers[0].digest == result.layers[0].digest
    run(main)
