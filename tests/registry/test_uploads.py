"""Upload sessions: a bounded number of open writers, and a session survives its writer being closed (or the
server restarting) with its bytes and a correct digest at the end."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from berth.oci.digest import Digest
from berth.registry.names import RepoName
from berth.registry.storage import FilesystemStorage
from berth.registry.uploads import UploadTable
from tests.registry.client import location, url, with_query
from tests.registry.servers import start_berth


def test_least_recently_used_writers_are_closed_and_resume_from_disk(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    table = UploadTable(storage, max_open=2)
    repo = RepoName("lru")
    sessions = [storage.start_upload(repo) for _ in range(4)]
    parts = {s.id: [os.urandom(1000), os.urandom(3000)] for s in sessions}

    async def run() -> list[Digest]:
        for i in range(2):
            for s in sessions:
                async with table.writer(s) as w:
                    w.write(parts[s.id][i])
                assert table.open_writers <= 2
        out = []
        for s in sessions:
            want = Digest("sha256", hashlib.sha256(b"".join(parts[s.id])).hexdigest())
            async with table.writer(s) as w:
                out.append(storage.commit_upload(repo, w, want))
            table.finish(s, abort=False)
        return out

    digests = asyncio.run(run())
    for s, d in zip(sessions, digests, strict=True):
        data = b"".join(parts[s.id])
        assert d == Digest("sha256", hashlib.sha256(data).hexdigest())
        assert storage.blob_path(repo, d).read_bytes() == data
    assert os.listdir(tmp_path / "content" / "ingest") == []
    assert list(storage.upload_sessions()) == []


def test_an_upload_continues_after_a_server_restart(tmp_path: Path) -> None:
    data = os.urandom(400_000)
    with start_berth(tmp_path) as first:
        port = first.host.rsplit(":", 1)[1]
        r = first.session.post(url(first, "/v2/restart/app/blobs/uploads/"))
        r = first.session.patch(location(first, r), data=data[:150_000], headers={"Content-Range": "0-149999"})
        assert r.status_code == 202
        path = r.headers["Location"]
    with start_berth(tmp_path, port=int(port)) as second:
        loc = url(second, path)
        assert second.session.get(loc).headers["Range"] == "0-149999"
        r = second.session.patch(loc, data=data[150_000:], headers={"Content-Range": f"150000-{len(data) - 1}"})
        assert r.status_code == 202
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = second.session.put(with_query(location(second, r), digest=digest))
        assert r.status_code == 201, r.text
        assert second.session.get(url(second, f"/v2/restart/app/blobs/{digest}")).content == data


def test_the_server_expires_idle_upload_sessions(tmp_path: Path) -> None:
    with start_berth(tmp_path, "--upload-ttl", "1") as server:
        r = server.session.post(url(server, "/v2/idle/app/blobs/uploads/"))
        loc = location(server, r)
        assert server.session.patch(loc, data=b"x" * 1000).status_code == 202
        assert os.listdir(server.root / "content" / "ingest") != []
        deadline = time.monotonic() + 10
        while server.session.get(loc).status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.session.get(loc).status_code == 404
        assert os.listdir(server.root / "content" / "ingest") == []
        assert os.listdir(server.root / "uploads") == []
        busy = location(server, server.session.post(url(server, "/v2/idle/app/blobs/uploads/")))
        for _ in range(6):  # touched every 0.4 s: stays alive past its 1 s ttl
            time.sleep(0.4)
            r = server.session.patch(busy, data=b"y" * 10)
            assert r.status_code == 202
            busy = location(server, r)
