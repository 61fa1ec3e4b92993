"""`images` rows from the daemon's list, as docker's formatter makes them: tags, digests, dangling images."""

from __future__ import annotations

import time
from typing import Any

from berth.cli.formatter import render_list
from berth.cli.images import IMAGE_HEADER, image_format, image_rows

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def img(tags: list[str] | None, digests: list[str] | None, **extra: Any) -> dict[str, Any]:
    return {"Id": "sha256:" + "ab" * 32, "Created": int(time.time()) - 7200, "Size": 4_260_000, "SharedSize": -1,
            "Containers": -1, "RepoTags": tags, "RepoDigests": digests, **extra}


def rows_text(images: list[dict[str, Any]], fmt: str, digests: bool = False, trunc: bool = True) -> str:
    f = image_format(fmt, False, digests)
    return render_list(f, image_rows(images, trunc, digests, f), IMAGE_HEADER)


def test_a_tag_and_its_digest_share_a_row_when_digests_are_shown() -> None:
    images = [img(["reg:5000/team/app:1", "reg:5000/team/app:2"], [f"reg:5000/team/app@{D1}"])]
    out = rows_text(images, "{{.Repository}} {{.Tag}} {{.Digest}}", digests=True)
    assert out == f"reg:5000/team/app 1 {D1}\nreg:5000/team/app 2 {D1}\n"
    # docker looks digests up when the format spells "{{.Digest}}" exactly, even without --digests...
    assert rows_text(images, "{{.Repository}} {{.Tag}} {{.Digest}}") == \
        f"reg:5000/team/app 1 {D1}\nreg:5000/team/app 2 {D1}\n"
    # ...and not when it is spelled with spaces
    assert rows_text(images, "{{.Repository}} {{.Tag}} {{ .Digest }}") == \
        "reg:5000/team/app 1 <none>\nreg:5000/team/app 2 <none>\n"


def test_a_digest_without_a_tag_gets_a_none_row() -> None:
    images = [img([], [f"busybox@{D1}", f"busybox@{D2}"])]
    assert rows_text(images, "{{.Repository}} {{.Tag}} {{.Digest}}", digests=True) == \
        f"busybox <none> {D1}\nbusybox <none> {D2}\n"
    assert rows_text(images, "{{.Repository}}|{{.Tag}}|{{.Digest}}") == "busybox|<none>|\n"


def test_dangling_images_in_both_api_shapes() -> None:
    for tags, digests in ((["<none>:<none>"], ["<none>@<none>"]), ([], []), (None, None)):
        assert rows_text([img(tags, digests)], "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}") == \
            "<none> <none> <none> abababababab\n"


def test_docker_hub_names_show_familiar() -> None:
    images = [img(["docker.io/library/busybox:latest", "docker.io/team/x:1"], [])]
    assert rows_text(images, "{{.Repository}}:{{.Tag}}") == "busybox:latest\nteam/x:1\n"


def test_the_default_table_and_the_digest_table() -> None:
    images = [img(["busybox:latest"], [f"busybox@{D1}"])]
    assert rows_text(images, "table") == (
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n"
        "busybox      latest    abababababab   2 hours ago   4.26MB\n")
    assert rows_text(images, "table", digests=True) == (
        "REPOSITORY   TAG       DIGEST" + " " * 68 + "IMAGE ID       CREATED       SIZE\n"
        f"busybox      latest    {D1}   abababababab   2 hours ago   4.26MB\n")


def test_a_custom_table_gets_the_digest_column_appended_with_digests() -> None:
    assert image_format("table {{.ID}}", False, True) == "table {{.ID}}\t{{.Digest}}"
    assert image_format("table {{.Digest}} {{.ID}}", False, True) == "table {{.Digest}} {{.ID}}"
    assert image_format("table", True, True) == "{{.ID}}"


def test_unparseable_repo_tags_are_skipped_as_docker_does() -> None:
    images = [img(["UPPER:case", "ok:1"], [])]
    assert rows_text(images, "{{.Repository}}:{{.Tag}}") == "ok:1\n"
