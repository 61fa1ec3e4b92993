"""A writer killed with SIGKILL leaves a store that passes check(), and the same ingest then succeeds."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from berth.content import BlobStore
from berth.oci.digest import Digest

SIZE = 8 << 20


def _data() -> bytes:
    """Deterministic content both the child and the test can produce."""
    block = hashlib.sha256(b"berth crash test").digest() * (1 << 15)  # 1 MiB
    return b"".join(bytes([i]) + block[1:] for i in range(SIZE >> 20))


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from berth.content import BlobStore
    from berth.oci.digest import Digest
    from tests.content.test_crash import _data
    data = _data()
    store = BlobStore(Path(sys.argv[1]))
    with store.writer("crash-ref", Digest.of(data), len(data), resumable=True) as w:
        for i in range(0, len(data), 64 << 10):
            w.write(data[i:i + (64 << 10)])
            if w.offset >= (3 << 20):
                print(w.offset, flush=True)
                time.sleep(0.05)
        w.commit()
    print("committed", flush=True)
""")

LOOP = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from berth.content import BlobStore
    store = BlobStore(Path(sys.argv[1]))
    print("ready", flush=True)
    i = 0
    while True:
        store.put_bytes(os.urandom(200) + i.to_bytes(8, "big") * 2000)
        i += 1
""")


def _spawn(script: str, root: Path) -> subprocess.Popen[str]:
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo / "src"), str(repo)]))
    return subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=repo)


def test_a_writer_killed_mid_ingest_leaves_a_store_that_checks_and_the_ingest_resumes(tmp_path: Path) -> None:
    data = _data()
    digest = Digest.of(data)
    proc = _spawn(CHILD, tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert int(line) >= 3 << 20, line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    store = BlobStore(tmp_path)
    assert store.check() == []
    assert not store.has(digest)
    with store.writer("crash-ref", digest, len(data), resumable=True, wait=False) as w:
        offset = w.offset  # the killed writer's flock went with it: no wait
        assert (3 << 20) <= offset < len(data)
        w.write(data[offset:])
        assert w.commit().digest == digest
    assert store.read_bytes(digest, limit=SIZE) == data
    assert os.listdir(tmp_path / "ingest") == [] and store.check() == []


def test_a_writer_killed_at_random_moments_never_leaves_a_bad_blob(tmp_path: Path) -> None:
    rng = random.Random(7)
    for _ in range(6):
        proc = _spawn(LOOP, tmp_path)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.05, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
        store = BlobStore(tmp_path)
        assert store.check() == []
    assert len(list(store.walk())) > 10
    # whatever partial the kills left, the same put succeeds, and gc cleans up the rest
    assert store.has(store.put_bytes(b"after the crash"))
    store.gc(store.walk(), stale_after=0)
    assert os.listdir(tmp_path / "ingest") == [] and store.check() == []
