"""Authentication: htpasswd Basic auth, and the built-in token server with per-repository rights.

Users are made with Apache's `htpasswd -B` (bcrypt, what distribution accepts too); clients are skopeo
(`--creds`) and plain HTTP. A wrong password is a 401 with the spec's error JSON and a challenge.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.registry.client import error_codes, url
from tests.registry.conftest import needs
from tests.registry.servers import RegistryServer, free_port, make_image, skopeo, start_berth, write_oci_layout

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def htpasswd_file(path: Path) -> Path:
    needs("htpasswd")
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run(["htpasswd", "-B", "-b", *(["-c"] if i == 0 else []), str(path), user, password],
                       check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("basic")
    with start_berth(work, "--htpasswd", str(htpasswd_file(work / "htpasswd"))) as s:
        yield s


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("token")
    acl = work / "acl.json"
    acl.write_text(json.dumps({"alice": {"alice/*": ["*"], "public/*": ["*"]},
                               "bob": {"alice/*": ["pull"], "bob/*": ["pull", "push"]},
                               "anonymous": {"public/*": ["pull"]}}))
    port = free_port()
    with start_berth(work, "--htpasswd", str(htpasswd_file(work / "htpasswd")), "--token-realm",
                     f"http://127.0.0.1:{port}/token", "--token-service", "berth-test", "--token-acl", str(acl),
                     port=port) as s:
        yield s


def layout(tmp_path: Path, tag: str = "v1") -> str:
    return f"oci:{write_oci_layout(tmp_path / 'src', make_image([{'f': tag.encode() * 100}]), tag)}:{tag}"


# -- htpasswd -------------------------------------------------------------------------------------

def test_basic_without_credentials_is_401_with_a_challenge(basic: RegistryServer) -> None:
    r = requests.get(url(basic, "/v2/"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert error_codes(r) == ["UNAUTHORIZED"]
    r = requests.get(url(basic, "/v2/any/thing/tags/list"))
    assert r.status_code == 401


@pytest.mark.parametrize("creds", [("alice", "wrong"), ("nobody", "alice-secret"), ("alice", ""), ("", "")])
def test_basic_wrong_password_is_401_with_error_json(basic: RegistryServer, creds: tuple[str, str]) -> None:
    r = requests.get(url(basic, "/v2/"), auth=creds)
    assert r.status_code == 401
    assert error_codes(r) == ["UNAUTHORIZED"]


def test_basic_right_password_is_200(basic: RegistryServer) -> None:
    assert requests.get(url(basic, "/v2/"), auth=("bob", "bob-secret")).status_code == 200


@pytest.mark.interop
def test_skopeo_pushes_and_pulls_with_basic_credentials(basic: RegistryServer, tmp_path: Path) -> None:
    needs("skopeo")
    ref = f"docker://{basic.host}/team/app:v1"
    p = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wrong", layout(tmp_path), ref)
    assert p.returncode != 0
    assert "401" in p.stderr or "unauthorized" in p.stderr.lower()
    p = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-secret", layout(tmp_path), ref)
    assert p.returncode == 0, p.stderr
    p = skopeo("copy", "--src-tls-verify=false", "--src-creds", "bob:bob-secret", ref, f"oci:{tmp_path / 'o'}:v1")
    assert p.returncode == 0, p.stderr
    assert skopeo("inspect", "--tls-verify=false", ref).returncode != 0  # anonymous


# -- tokens ---------------------------------------------------------------------------------------

def get_token(server: RegistryServer, scope: str, creds: tuple[str, str] | None) -> requests.Response:
    return requests.get(url(server, "/token"), params={"service": "berth-test", "scope": scope}, auth=creds)


def test_token_challenge_names_realm_service_and_scope(token: RegistryServer) -> None:
    r = requests.get(url(token, "/v2/"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == f'Bearer realm="{token.url}/token",service="berth-test"'
    r = requests.get(url(token, "/v2/alice/app/tags/list"))
    assert 'scope="repository:alice/app:pull"' in r.headers["WWW-Authenticate"]
    assert error_codes(r) == ["UNAUTHORIZED"]


def test_token_endpoint_refuses_a_wrong_password_with_error_json(token: RegistryServer) -> None:
    r = get_token(token, "repository:alice/app:pull", ("alice", "nope"))
    assert r.status_code == 401
    assert error_codes(r) == ["UNAUTHORIZED"]


def test_token_grants_only_the_rights_in_the_acl(token: RegistryServer) -> None:
    r = get_token(token, "repository:alice/app:pull,push", ("bob", "bob-secret"))
    assert r.status_code == 200
    tok = r.json()["token"]
    headers = {"Authorization": f"Bearer {tok}"}
    assert requests.get(url(token, "/v2/alice/app/tags/list"), headers=headers).status_code in (200, 404)
    r = requests.post(url(token, "/v2/alice/app/blobs/uploads/"), headers=headers)
    assert r.status_code == 401
    assert error_codes(r) == ["UNAUTHORIZED"]
    r = requests.get(url(token, "/v2/bob/app/tags/list"), headers=headers)  # the token is for alice/app only
    assert r.status_code == 401


def test_a_forged_or_foreign_token_is_refused(token: RegistryServer) -> None:
    tok = get_token(token, "repository:alice/app:pull", ("alice", "alice-secret")).json()["token"]
    head, body, sig = tok.split(".")
    forged = f"{head}.{body}.{sig[:-2]}AA"
    r = requests.get(url(token, "/v2/alice/app/tags/list"), headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    r = requests.get(url(token, "/v2/alice/app/tags/list"), headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401


@pytest.mark.interop
def test_skopeo_with_token_auth_follows_the_acl(token: RegistryServer, tmp_path: Path) -> None:
    needs("skopeo")
    src = layout(tmp_path)
    alice_ref = f"docker://{token.host}/alice/app:v1"
    p = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wrong", src, alice_ref)
    assert p.returncode != 0
    p = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-secret", src, alice_ref)
    assert p.returncode == 0, p.stderr
    p = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "bob:bob-secret", src,
               f"docker://{token.host}/alice/bobs:v1")
    assert p.returncode != 0  # bob may only pull alice/*
    p = skopeo("copy", "--src-tls-verify=false", "--src-creds", "bob:bob-secret", alice_ref,
               f"oci:{tmp_path / 'pulled'}:v1")
    assert p.returncode == 0, p.stderr
    p = skopeo("delete", "--tls-verify=false", "--creds", "bob:bob-secret", alice_ref)
    assert p.returncode != 0  # no delete right
    public = f"docker://{token.host}/public/app:v1"
    assert skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-secret", src, public).returncode == 0
    p = skopeo("inspect", "--tls-verify=false", "--no-creds", public)  # anonymous pull of public/*
    assert p.returncode == 0, p.stderr
    assert skopeo("inspect", "--tls-verify=false", "--no-creds", alice_ref).returncode != 0
    p = skopeo("delete", "--tls-verify=false", "--creds", "alice:alice-secret", alice_ref)
    assert p.returncode == 0, p.stderr


# -- the web UI -----------------------------------------------------------------------------------

def test_ui_asks_for_basic_credentials_and_applies_them(basic: RegistryServer) -> None:
    r = requests.get(url(basic, "/"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert requests.get(url(basic, "/"), auth=("alice", "wrong")).status_code == 401
    assert requests.get(url(basic, "/"), auth=("alice", "alice-secret")).status_code == 200


def test_ui_with_token_auth_uses_the_same_users_and_rights(token: RegistryServer) -> None:
    r = requests.get(url(token, "/ui/repository?name=alice/app"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")  # a browser cannot do the token dance
    assert requests.get(url(token, "/ui/repository?name=alice/app"), auth=("bob", "nope")).status_code == 401
    assert requests.get(url(token, "/ui/repository?name=bob/app"), auth=("alice", "alice-secret")).status_code == 401
    r = requests.get(url(token, "/ui/repository?name=alice/app"), auth=("bob", "bob-secret"))
    assert r.status_code in (200, 404)  # allowed: the repository may or may not exist yet


@pytest.mark.interop
@pytest.mark.parametrize("kind", ["basic", "token"])
def test_skopeo_login_checks_the_password(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    needs("skopeo")
    server: RegistryServer = request.getfixturevalue(kind)
    authfile = str(tmp_path / "auth.json")
    p = skopeo("login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "-p", "wrong", server.host)
    assert p.returncode != 0
    p = skopeo("login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "-p", "alice-secret",
               server.host)
    assert p.returncode == 0, p.stderr
    ref = f"docker://{server.host}/alice/login-{kind}:v1"
    p = skopeo("copy", "--dest-tls-verify=false", "--authfile", authfile, layout(tmp_path), ref)
    assert p.returncode == 0, p.stderr
    p = skopeo("inspect", "--tls-verify=false", "--authfile", authfile, ref)
    assert p.returncode == 0, p.stderr
