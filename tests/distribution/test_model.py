"""Pure parts of the registry client: challenges, X-Registry-Auth, config.json, hosts, progress JSON, references."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from berth.api.distribution import human_size, progress_bar, progress_message, pull_reference
from berth.distribution.auth import parse_challenges, pick
from berth.distribution.credentials import HUB_KEY, AuthConfig, CredentialStore, decode_registry_auth, server_key
from berth.distribution.hosts import RegistryHosts, is_loopback, split_host
from berth.distribution.progress import Progress, Step
from berth.distribution.push import Format, convert
from berth.errors import InvalidArgument, NotFound, Unavailable
from berth.oci.descriptor import Descriptor
from berth.oci.digest import Digest
from berth.oci.manifest import Manifest
from berth.oci.mediatype import MediaType


def test_challenges_are_parsed_with_quoted_commas_and_bearer_is_preferred() -> None:
    cs = parse_challenges(['Basic realm="basic-realm"',
                           'Bearer realm="https://auth.example/token",service="reg,istry",scope="repository:a/b:pull"'])
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    bearer = pick(cs)
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.realm == "https://auth.example/token" and bearer.service == "reg,istry"
    assert bearer.scope == "repository:a/b:pull"
    assert pick(parse_challenges(["Basic realm=x"])) == cs[0].__class__("basic", {"realm": "x"})
    assert pick([]) is None


def test_x_registry_auth_is_decoded_leniently() -> None:
    raw = json.dumps({"username": "u", "password": "p?>~", "serveraddress": "h:5000"}).encode()
    for encoded in (base64.urlsafe_b64encode(raw).decode(), base64.b64encode(raw).decode(),
                    base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        auth = decode_registry_auth(encoded)
        assert (auth.username, auth.password, auth.server_address) == ("u", "p?>~", "h:5000")
    assert decode_registry_auth("e30=").anonymous
    assert decode_registry_auth("").anonymous
    token = decode_registry_auth(base64.b64encode(b'{"identitytoken":"tok"}').decode())
    assert token.identity_token == "tok" and not token.anonymous
    with pytest.raises(InvalidArgument):
        decode_registry_auth("!!!not base64")
    with pytest.raises(InvalidArgument):
        decode_registry_auth(base64.b64encode(b"[1]").decode())
    assert decode_registry_auth(AuthConfig("a", "b", server_address="x").header()).username == "a"
    assert "b" not in repr(AuthConfig("a", "b"))


def test_config_json_is_written_0600_in_a_0700_dir_and_erased(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "docker")
    store.store("127.0.0.1:5000", AuthConfig("alice", "s3cret"))
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    raw = json.loads(store.path.read_text())
    assert raw["auths"]["127.0.0.1:5000"]["auth"] == base64.b64encode(b"alice:s3cret").decode()
    got = store.get("127.0.0.1:5000")
    assert (got.username, got.password) == ("alice", "s3cret")
    assert store.get("other:5000").anonymous
    store.store("docker.io", AuthConfig("bob", "pw"))
    assert HUB_KEY in json.loads(store.path.read_text())["auths"]
    store.erase("127.0.0.1:5000")
    assert store.get("127.0.0.1:5000").anonymous
    with pytest.raises(NotFound):
        store.erase("127.0.0.1:5000")
    raw = json.loads(store.path.read_text())
    raw["other"] = {"kept": True}
    store.path.write_text(json.dumps(raw))
    store.store("x:1", AuthConfig("c", "d"))
    assert json.loads(store.path.read_text())["other"] == {"kept": True}   # unknown keys survive


def test_credential_helpers_are_honoured(tmp_path: Path) -> None:
    helper_dir = tmp_path / "bin"
    helper_dir.mkdir()
    db = tmp_path / "helper-db.json"
    script = helper_dir / "docker-credential-test"
    # a helper written in Python directly, reading stdin itself
    script.write_text(f"""#!{os.sys.executable}
import json, sys
db = {str(db)!r}
try:
    data = json.load(open(db))
except FileNotFoundError:
    data = {{}}
action, payload = sys.argv[1], sys.stdin.read()
if action == "store":
    item = json.loads(payload)
    data[item["ServerURL"]] = item
elif action == "get":
    if payload.strip() not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps(data[payload.strip()]))
elif action == "erase":
    if data.pop(payload.strip(), None) is None:
        print("credentials not found in native keychain"); sys.exit(1)
json.dump(data, open(db, "w"))
""")
    script.chmod(0o755)
    store = CredentialStore(tmp_path / "docker", helper_dir=helper_dir)
    store.dir.mkdir(mode=0o700)
    store.path.write_text(json.dumps({"credsStore": "test"}))
    store.store("reg:5000", AuthConfig("alice", "s3cret"))
    assert "s3cret" not in store.path.read_text()            # the secret went to the helper only
    assert json.loads(db.read_text())["reg:5000"]["Secret"] == "s3cret"
    got = store.get("reg:5000")
    assert (got.username, got.password) == ("alice", "s3cret")
    assert store.get("nobody:1").anonymous
    store.erase("reg:5000")
    assert store.get("reg:5000").anonymous
    store.path.write_text(json.dumps({"credHelpers": {"reg:5000": "missing"}}))
    with pytest.raises(Unavailable, match="docker-credential-missing"):
        store.get("reg:5000")


def test_server_keys_and_hosts() -> None:
    assert server_key("docker.io") == HUB_KEY
    assert server_key("https://index.docker.io/v1/") == HUB_KEY
    assert server_key("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert split_host("[::1]:5000") == ("::1", 5000)
    assert split_host("Example.com") == ("example.com", None)
    with pytest.raises(InvalidArgument):
        split_host("host:99999")
    assert is_loopback("127.0.0.2:5000") and is_loopback("localhost:1") and is_loopback("[::1]:5")
    assert not is_loopback("10.0.0.1:5000")
    hosts = RegistryHosts.create(["10.1.0.0/16", "reg.internal:5000", "http://plain.example"])
    assert hosts.is_insecure("10.1.2.3:5000") and hosts.is_insecure("reg.internal:5000")
    assert hosts.is_insecure("plain.example") and not hosts.is_insecure("reg.internal:6000")
    assert not hosts.is_insecure("10.2.0.1") and not hosts.is_insecure("docker.io")
    assert hosts.endpoint("docker.io").api_host == "registry-1.docker.io"
    with pytest.raises(InvalidArgument):
        RegistryHosts.create(["10.0.0.0/99"])


def test_certs_d_cas_are_loaded_and_a_bad_one_is_reported(tmp_path: Path) -> None:
    d = tmp_path / "certs.d" / "reg.example:5000"
    d.mkdir(parents=True)
    (d / "ca.crt").write_text("not a certificate")
    hosts = RegistryHosts.create(certs_dirs=[tmp_path / "certs.d"])
    with pytest.raises(InvalidArgument, match="ca.crt"):
        hosts.ssl_context(hosts.endpoint("reg.example:5000"))
    ctx = hosts.ssl_context(hosts.endpoint("other.example"))
    assert ctx.check_hostname  # verified by default


def test_progress_lines_look_like_dockerds() -> None:
    assert human_size(211) == "211B" and human_size(1_065_000) == "1.065MB" and human_size(32_500) == "32.5kB"
    bar = progress_bar(211, 211)
    assert bar == "[" + "=" * 50 + ">] " + "    211B/211B"
    assert progress_bar(0, 100).startswith("[>" + " " * 50 + "]")
    msg = progress_message(Progress(Step.DOWNLOADING, "0123456789ab", 50, 100))
    assert list(msg) == ["status", "progressDetail", "progress", "id"]
    assert msg["progressDetail"] == {"current": 50, "total": 100}
    assert progress_message(Progress(Step.PULL_COMPLETE, "0123456789ab")) == {
        "status": "Pull complete", "progressDetail": {}, "id": "0123456789ab"}
    assert progress_message(Progress(Step.MOUNTED, "x", detail="team/bb"))["status"] == "Mounted from team/bb"


def test_pull_references_from_fromimage_and_tag() -> None:
    d = "sha256:" + "a" * 64
    assert str(pull_reference("127.0.0.1:5000/a/b", "1")[0]) == "127.0.0.1:5000/a/b:1"
    assert pull_reference("127.0.0.1:5000/a/b", d)[0].digest == Digest.parse(d)
    assert pull_reference("busybox", "")[1] is True           # no tag at all: every tag (pull -a)
    assert pull_reference("busybox:1", "")[1] is False
    with pytest.raises(InvalidArgument):
        pull_reference("a/UPPER", "1")
    with pytest.raises(InvalidArgument):
        pull_reference("a/b", "bad tag!")


def test_format_conversion_keeps_blobs_and_refuses_zstd_for_docker() -> None:
    cfg = Descriptor(MediaType.OCI_CONFIG, Digest.of(b"c"), 1)
    layer = Descriptor(MediaType.OCI_LAYER_GZIP, Digest.of(b"l"), 1)
    m = Manifest(MediaType.OCI_MANIFEST, cfg, (layer,))
    docker = convert(m, Format.DOCKER)
    assert docker.media_type == MediaType.DOCKER_MANIFEST and docker.layers[0].digest == layer.digest
    assert convert(docker, Format.OCI) == m
    z = Manifest(MediaType.OCI_MANIFEST, cfg, (Descriptor(MediaType.OCI_LAYER_ZSTD, Digest.of(b"z"), 1),))
    with pytest.raises(InvalidArgument, match="zstd"):
        convert(z, Format.DOCKER)
    with pytest.raises(InvalidArgument):
        Format.parse("v1")
