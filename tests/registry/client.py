"""A tiny distribution-spec client for the tests: absolute URLs from Location headers, blob and manifest pushes.

May import: the standard library, requests.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urljoin

import requests

from tests.registry.servers import Blob, Image, RegistryServer


def url(server: RegistryServer, path: str) -> str:
    return urljoin(server.url, path)


def location(server: RegistryServer, resp: requests.Response) -> str:
    return urljoin(server.url + "/", resp.headers["Location"])


def with_query(u: str, **params: str) -> str:
    return u + ("&" if "?" in u else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def start_upload(server: RegistryServer, repo: str) -> str:
    r = server.session.post(url(server, f"/v2/{repo}/blobs/uploads/"))
    assert r.status_code == 202, r.text
    return location(server, r)


def push_blob(server: RegistryServer, repo: str, blob: Blob | bytes) -> str:
    data = blob.data if isinstance(blob, Blob) else blob
    digest = blob.digest if isinstance(blob, Blob) else Blob("", data).digest
    loc = start_upload(server, repo)
    r = server.session.put(with_query(loc, digest=digest), data=data,
                           headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def push_manifest(server: RegistryServer, repo: str, ref: str, manifest: Blob | bytes,
                  media_type: str = "application/vnd.oci.image.manifest.v1+json") -> requests.Response:
    data = manifest.data if isinstance(manifest, Blob) else manifest
    mt = manifest.media_type if isinstance(manifest, Blob) else media_type
    return server.session.put(url(server, f"/v2/{repo}/manifests/{ref}"), data=data, headers={"Content-Type": mt})


def push_image(server: RegistryServer, repo: str, image: Image, tag: str) -> requests.Response:
    for b in image.blobs:
        push_blob(server, repo, b)
    r = push_manifest(server, repo, tag, image.manifest)
    assert r.status_code == 201, r.text
    return r


def error_codes(resp: requests.Response) -> list[str]:
    """The spec's error codes in a response body (empty if the body is not the spec's error JSON)."""
    try:
        body: Any = resp.json()
    except (ValueError, json.JSONDecodeError):
        return []
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [str(e.get("code")) for e in body["errors"] if isinstance(e, dict)]
