"""examples/django-imagemagick end to end: bootstrap debian:bookworm, build the example with the docker CLI (its RUN
installs python3-django and imagemagick from Debian's mirror through the default bridge), run it with a published
port and post a PNG: the answer is a smaller PNG. Slow (a Debian bootstrap and an apt-get install)."""

from __future__ import annotations

import http.client
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root, pytest.mark.slow]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django-imagemagick"


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG with a gradient."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            row += bytes((x * 255 // width, y * 255 // height, 128))
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:32]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        yield daemon


def test_the_django_imagemagick_example_builds_runs_and_makes_thumbnails(b: PrivateBerthd) -> None:
    status, body = b.api("POST", "/berth/images/bootstrap?base=debian:bookworm")
    assert status == 200 and b'"errorDetail"' not in body, body[-2000:]
    built = b.docker("build", "-t", "thumbs:1", str(EXAMPLE), env={"DOCKER_BUILDKIT": "0"}, check=False)
    assert built.returncode == 0, (built.stdout.decode()[-4000:], built.stderr.decode())
    port = free_port()
    cid = b.docker("run", "-d", "-p", f"127.0.0.1:{port}:8000", "thumbs:1").stdout.decode().strip()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, b.docker("logs", cid, check=False).stderr.decode()[-2000:]
            time.sleep(0.5)
        original = png(320, 200)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/thumbnail", body=original, headers={"Content-Type": "image/png"})
        resp = conn.getresponse()
        thumb = resp.read()
        assert resp.status == 200 and resp.getheader("Content-Type") == "image/png", thumb[:300]
        assert png_size(thumb) == (64, 40) and len(thumb) < len(original)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/thumbnail", body=b"not an image", headers={"Content-Type": "image/png"})
        assert conn.getresponse().status == 400
    finally:
        b.docker("rm", "-f", cid, check=False)
