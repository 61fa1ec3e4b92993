"""The registry's web UI in headless Chromium (Debian's, driven by Playwright): search the repositories, click
through to a tag, its manifest (platforms of an index, layers, config, history, the pull command) and a layer.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.registry.client import push_blob, push_image, push_manifest, url
from tests.registry.servers import Blob, RegistryServer, make_image, start_berth

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, Any]]:
    with start_berth(tmp_path_factory.mktemp("ui")) as s:
        img = make_image([{"etc/os-release": b"ID=berth\n"}, {"usr/bin/tool": os.urandom(120_000)}],
                         env=("PATH=/usr/bin:/bin", "LANG=C.UTF-8"), cmd=("serve", "--port=8080"),
                         labels={"org.opencontainers.image.title": "<b>web</b>"})
        push_image(s, "team/web", img, "1.0")
        push_manifest(s, "team/web", "latest", img.manifest)
        push_image(s, "team/db", make_image([{"db": b"db"}]), "15")
        push_image(s, "other/tool", make_image([{"t": b"t"}]), "v2")
        index = Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {**img.manifest.descriptor(), "platform": {"os": "linux", "architecture": "amd64"}}]}).encode())
        push_blob(s, "team/web", b"")
        assert push_manifest(s, "team/web", "multi", index).status_code == 201
        yield s, img


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/install.sh installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_click_from_the_repository_list_to_a_layer(populated: tuple[RegistryServer, Any], browser: Any,
                                                    tmp_path: Path) -> None:
    server, img = populated
    page = browser.new_page()
    page.goto(server.url + "/")
    assert page.title().startswith("Repositories")
    names = page.locator("table.repos td a").all_inner_texts()
    assert names == ["other/tool", "team/db", "team/web"]

    page.fill("input[name=q]", "team")
    page.click("button[type=submit]")
    assert page.locator("table.repos td a").all_inner_texts() == ["team/db", "team/web"]

    page.click("text=team/web")
    assert page.locator("table.tags td a").all_inner_texts() == ["1.0", "latest", "multi"]

    page.click("table.tags >> text=1.0")
    assert page.locator("#pull").inner_text() == f"docker pull {server.host}/team/web:1.0"
    body = page.locator("main").inner_text()
    assert img.manifest.digest in body
    assert "PATH=/usr/bin:/bin" in body and "LANG=C.UTF-8" in body
    assert '["serve", "--port=8080"]' in body and '["/entry"]' in body
    assert "org.opencontainers.image.title=<b>web</b>" in body  # escaped, shown as text
    assert "ADD layer1 /" in body
    layer_links = page.locator("table.layers td a")
    assert layer_links.count() == 2
    sizes = page.locator("table.layers td .num").all_inner_texts()
    assert sizes[1].endswith("kB")
    page.screenshot(path=str(tmp_path / "manifest.png"), full_page=True)
    if os.environ.get("BERTH_UI_SCREENSHOT"):
        shutil.copy(tmp_path / "manifest.png", os.environ["BERTH_UI_SCREENSHOT"])

    layer_links.nth(1).click()
    text = page.locator("main").inner_text()
    assert img.layers[1].digest in text
    assert f"({len(img.layers[1].data)} bytes)" in text
    href = page.locator("text=blob").get_attribute("href")
    assert requests.get(server.url + href).content == img.layers[1].data
    page.close()


def test_index_page_lists_platforms_and_links_to_the_manifest(populated: tuple[RegistryServer, Any],
                                                              browser: Any) -> None:
    server, img = populated
    page = browser.new_page()
    page.goto(url(server, "/ui/repository?name=team/web"))
    page.click("table.tags >> text=multi")
    assert page.locator("table.platforms td a").all_inner_texts() == ["linux/amd64"]
    page.click("text=linux/amd64")
    assert img.manifest.digest in page.locator("main").inner_text()
    assert page.locator("#pull").inner_text() == f"docker pull {server.host}/team/web@{img.manifest.digest}"
    page.close()


def test_ui_rejects_bad_names_and_unknown_things(populated: tuple[RegistryServer, Any]) -> None:
    server, _ = populated
    for path in ("/ui/repository?name=../etc", "/ui/repository?name=Team", "/ui/manifest?name=team/web&ref=..",
                 "/ui/blob?name=team/web&digest=sha256:zz"):
        assert requests.get(url(server, path)).status_code == 400, path
    for path in ("/ui/repository?name=no/such", "/ui/manifest?name=team/web&ref=nope",
                 "/ui/blob?name=team/web&digest=sha256:" + "0" * 64):
        assert requests.get(url(server, path)).status_code == 404, path

