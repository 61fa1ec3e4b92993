"""Pull, push and login through a private berthd, driven by the real docker CLI, against Debian's docker-registry.

Seeded with skopeo from image archives made here. Checks go through `docker image inspect` / `save` and the
registry's own API.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd
from tests.distribution.registry import ReferenceRegistry
from tests.images.archives import docker_archive, simple_layer
from tests.peers import busybox_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.timeout(180)]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def archive(work: Path) -> Path:
    big = bytes(range(256)) * (12 * 4096)   # 12 MiB: enough for Downloading progress lines
    path = work / "image.tar"
    path.write_bytes(docker_archive([busybox_rootfs_tar(), simple_layer({"hello.txt": b"hi\n", "big.bin": big})],
                                    tags=["x:1"], cmd=("cat", "/hello.txt")))
    return path


@pytest.fixture(scope="module")
def registry(work: Path, archive: Path) -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry(work) as reg:
        reg.seed(archive, "team/bb:1")
        yield reg


@pytest.fixture(scope="module")
def private_registry(work: Path, archive: Path) -> Iterator[ReferenceRegistry]:
    with ReferenceRegistry(work, htpasswd={"tester": "s3cret"}) as reg:
        reg.seed(archive, "priv/bb:1", creds="tester:s3cret")
        yield reg


@pytest.fixture
def berthd() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as b:
        yield b


def inspect(b: PrivateBerthd, ref: str) -> dict[str, object]:
    out: list[dict[str, object]] = json.loads(b.docker("image", "inspect", ref).stdout)
    return out[0]


def manifest_of(reg: ReferenceRegistry, repo: str, ref: str, auth: str = "") -> tuple[str, bytes, str]:
    headers = {"Accept": ACCEPT}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    status, body, h = reg.get(f"/v2/{repo}/manifests/{ref}", headers)
    assert status == 200, body
    return h["Docker-Content-Digest"], body, h["Content-Type"]


def test_docker_pull_through_berthd_stores_a_verified_image(registry: ReferenceRegistry, berthd: PrivateBerthd) -> None:
    ref = f"{registry.host}/team/bb:1"
    out = berthd.docker("pull", ref).stdout.decode()
    digest, _, _ = manifest_of(registry, "team/bb", "1")
    assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {ref}" in out
    info = inspect(berthd, ref)
    assert info["RepoTags"] == [ref]
    assert info["RepoDigests"] == [f"{registry.host}/team/bb@{digest}"]
    saved = berthd.docker("save", ref).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as tf:
        names = tf.getnames()
        layer_paths = json.loads(tf.extractfile("manifest.json").read())[0]["Layers"]  # type: ignore[union-attr]
        top = tf.extractfile(layer_paths[-1])
        assert top is not None
        with tarfile.open(fileobj=io.BytesIO(top.read())) as layer:
            assert layer.extractfile("hello.txt").read() == b"hi\n"  # type: ignore[union-attr]
    assert "manifest.json" in names
    again = berthd.docker("pull", ref).stdout.decode()
    assert f"Status: Image is up to date for {ref}" in again and "Already exists" in again
    by_digest = berthd.docker("pull", f"{registry.host}/team/bb@{digest}").stdout.decode()
    assert f"Digest: {digest}" in by_digest


def test_the_api_pull_stream_is_dockers_json_lines(registry: ReferenceRegistry, berthd: PrivateBerthd) -> None:
    status, body = berthd.api("POST", f"/v1.41/images/create?fromImage={registry.host}/team/bb&tag=1")
    assert status == 200
    lines = body.split(b"\r\n")
    assert lines[-1] == b""
    items = [json.loads(line) for line in lines[:-1]]
    assert items[0] == {"status": "Pulling from team/bb", "id": "1"}
    steps = [i.get("status") for i in items]
    for step in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"):
        assert step in steps, steps
    downloading = next(i for i in items if i.get("status") == "Downloading")
    assert set(downloading["progressDetail"]) == {"current", "total"}
    assert re.fullmatch(r"\[=*>\s*\] +\S+/\S+", downloading["progress"])
    assert b"\\u003e" in body      # Go's JSON escaping of '>' in progress bars, as dockerd sends them
    assert items[-1]["status"] == f"Status: Downloaded newer image for {registry.host}/team/bb:1"


def test_a_missing_tag_is_a_404_with_dockers_words(registry: ReferenceRegistry, berthd: PrivateBerthd) -> None:
    status, body = berthd.api("POST", f"/images/create?fromImage={registry.host}/team/bb&tag=nope")
    assert status == 404
    assert json.loads(body)["message"] == (f"manifest for {registry.host}/team/bb:nope not found: "
                                           "manifest unknown: manifest unknown")
    proc = berthd.docker("pull", f"{registry.host}/team/bb:nope", check=False)
    assert proc.returncode != 0 and b"manifest unknown" in proc.stderr
    status, body = berthd.api("POST", f"/images/create?fromImage={registry.host}/Bad_Name&tag=1")
    assert status == 400


def test_docker_push_through_berthd_and_pull_it_back(registry: ReferenceRegistry, berthd: PrivateBerthd,
                                                     archive: Path) -> None:
    berthd.docker("load", "-i", str(archive))
    target = f"{registry.host}/pushed/bb:7"
    berthd.docker("tag", "x:1", target)
    out = berthd.docker("push", target).stdout.decode()
    assert f"The push refers to repository [{registry.host}/pushed/bb]" in out
    digest, body, media_type = manifest_of(registry, "pushed/bb", "7")
    assert f"7: digest: {digest} size: {len(body)}" in out
    assert "Pushed" in out
    again = berthd.docker("push", target).stdout.decode()
    assert "Layer already exists" in again and f"7: digest: {digest}" in again
    # push's final aux line, as the CLI and docker-py read it
    status, raw = berthd.api("POST", f"/images/{registry.host}/pushed/bb/push?tag=7")
    last = json.loads(raw.split(b"\r\n")[-2])
    assert last == {"progressDetail": {}, "aux": {"Tag": "7", "Digest": digest, "Size": len(body)}}
    # the pushed image comes back whole into a fresh daemon
    with PrivateBerthd() as fresh:
        fresh.docker("pull", target)
        assert inspect(fresh, target)["Id"] == inspect(berthd, "x:1")["Id"]
    # --format: berth's push converts media types on request
    status, raw = berthd.api("POST", f"/images/{registry.host}/pushed/bb/push?tag=7&format=oci")
    assert status == 200 and b"error" not in raw
    _, body, media_type = manifest_of(registry, "pushed/bb", "7")
    assert media_type == OCI_MANIFEST and json.loads(body)["mediaType"] == OCI_MANIFEST
    berthd.docker("tag", "x:1", f"{registry.host}/pushed/bb:8")
    status, raw = berthd.api("POST", f"/images/{registry.host}/pushed/bb/push?tag=8&format=docker")
    assert status == 200 and b"error" not in raw
    assert manifest_of(registry, "pushed/bb", "8")[2] == DOCKER_MANIFEST
    status, raw = berthd.api("POST", f"/images/{registry.host}/nothere/bb/push?tag=1")
    assert status == 404


def test_a_manifest_list_is_pulled_for_the_right_platform(registry: ReferenceRegistry, berthd: PrivateBerthd,
                                                          work: Path) -> None:
    digests = {}
    for arch in ("arm64", "amd64"):
        path = work / f"{arch}.tar"
        path.write_bytes(docker_archive([simple_layer({"arch": arch.encode()})], tags=[f"{arch}:1"],
                                        extra_config={"architecture": arch}))
        registry.seed(path, f"multi/bb:{arch}")
        digests[arch], body, _ = manifest_of(registry, "multi/bb", arch)
        digests[arch + "-size"] = str(len(body))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
             "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": digests[a], "size": int(digests[a + "-size"]),
                            "platform": {"architecture": a, "os": "linux"}} for a in ("arm64", "amd64")]}
    req = urllib.request.Request(f"http://{registry.host}/v2/multi/bb/manifests/all", data=json.dumps(index).encode(),
                                 method="PUT",
                                 headers={"Content-Type": "application/vnd.docker.distribution.manifest.list.v2+json"})
    urllib.request.urlopen(req, timeout=30).close()
    ref = f"{registry.host}/multi/bb:all"
    berthd.docker("pull", ref)
    assert inspect(berthd, ref)["Architecture"] == "amd64"
    berthd.docker("pull", "--platform", "linux/arm64", ref)
    assert inspect(berthd, ref)["Architecture"] == "arm64"
    proc = berthd.docker("pull", "--platform", "linux/s390x", ref, check=False)
    assert proc.returncode != 0 and b"linux/s390x" in proc.stderr


def test_login_then_pull_and_push_with_basic_auth(private_registry: ReferenceRegistry, berthd: PrivateBerthd,
                                                  work: Path) -> None:
    config = work / "docker-config"
    env = {"DOCKER_CONFIG": str(config)}
    ref = f"{private_registry.host}/priv/bb:1"
    # (through the API: on a 401 the docker CLI falls into its interactive login prompt)
    status, body = berthd.api("POST", f"/images/create?fromImage={private_registry.host}/priv/bb&tag=1")
    assert status == 401 and "unauthorized" in json.loads(body)["message"]
    bad = berthd.docker("login", private_registry.host, "-u", "tester", "-p", "wrong", check=False, env=env)
    assert bad.returncode != 0 and b"401" in bad.stderr
    assert not (config / "config.json").exists() or private_registry.host not in (config / "config.json").read_text()
    berthd.docker("login", private_registry.host, "-u", "tester", "--password-stdin", input=b"s3cret\n", env=env)
    berthd.docker("pull", ref, env=env)
    berthd.docker("tag", ref, f"{private_registry.host}/priv/copy:2")
    berthd.docker("push", f"{private_registry.host}/priv/copy:2", env=env)
    manifest_of(private_registry, "priv/copy", "2", auth="tester:s3cret")
    status, body = berthd.api("POST", "/auth", json.dumps({"username": "tester", "password": "s3cret",
                                                          "serveraddress": private_registry.host}).encode())
    assert status == 200 and json.loads(body) == {"IdentityToken": "", "Status": "Login Succeeded"}
    status, body = berthd.api("POST", "/auth", json.dumps({"username": "tester", "password": "no",
                                                          "serveraddress": private_registry.host}).encode())
    assert status == 401 and "401 Unauthorized" in json.loads(body)["message"]


def test_five_concurrent_pulls_store_each_blob_once(registry: ReferenceRegistry, berthd: PrivateBerthd) -> None:
    ref = f"{registry.host}/team/bb:1"
    log_before = registry.log.read_text(errors="replace")
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        procs = list(pool.map(lambda _: berthd.docker("pull", ref, check=False), range(5)))
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    log = registry.log.read_text(errors="replace")[len(log_before):]
    gets = re.findall(r'"GET /v2/team/bb/blobs/(sha256:[0-9a-f]{64}) HTTP/1.1" 200', log)
    assert gets and len(gets) == len(set(gets)), gets
    blobs = list((berthd.root / "content" / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4   # manifest, config, two layers


def test_pull_all_tags(registry: ReferenceRegistry, berthd: PrivateBerthd, archive: Path) -> None:
    registry.seed(archive, "every/bb:a")
    registry.seed(archive, "every/bb:b")
    out = berthd.docker("pull", "--all-tags", f"{registry.host}/every/bb").stdout.decode()
    assert f"Status: Downloaded newer image for {registry.host}/every/bb" in out
    tags = inspect(berthd, f"{registry.host}/every/bb:a")["RepoTags"]
    assert sorted(tags) == [f"{registry.host}/every/bb:a", f"{registry.host}/every/bb:b"]  # type: ignore[arg-type]
