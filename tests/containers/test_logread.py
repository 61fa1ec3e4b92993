"""The logs endpoint's reader: what was there when the request came is read even if the container (and its log)
is removed before the reading starts, a follow reads once more after the container stopped, and follows
rotation to the new file."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from berth.api.logread import LogReader


def _follow(reader: LogReader, stopped: list[bool]) -> list[bytes]:
    got: list[bytes] = []

    async def emit(line: bytes) -> None:
        got.append(line)

    async def main() -> None:
        await asyncio.wait_for(reader.follow(lambda: stopped[0], emit), 5)

    asyncio.run(main())
    return got


def test_a_removed_log_is_still_read(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "c-json.log.1").write_bytes(b"old 1\nold 2\n")
    (d / "c-json.log").write_bytes(b"new 1\nnew 2\n")
    reader = LogReader(d / "c-json.log")
    shutil.rmtree(d)          # the client removed the container as soon as it had the headers
    try:
        assert reader.lines() == [b"old 1\n", b"old 2\n", b"new 1\n", b"new 2\n"]
        assert _follow(reader, [True]) == []
    finally:
        reader.close()


def test_output_written_just_before_the_stop_is_not_lost(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(b"first\npart")
    reader = LogReader(log)
    try:
        assert reader.lines() == [b"first\n"]      # a line still being written waits for its end
        with open(log, "ab") as f:
            f.write(b"ial\nlast\n")
        # the exit is recorded already when follow first looks: it still reads what came before it
        assert _follow(reader, [True]) == [b"partial", b"last"]
    finally:
        reader.close()


def test_follow_waits_for_a_log_not_written_yet_and_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    reader = LogReader(log)      # created, not started: no log yet
    stopped = [False]

    def later() -> None:
        log.write_bytes(b"a\nb\n")

    def rotate_then_stop() -> None:
        with open(log, "ab") as f:
            f.write(b"c\n")
        log.rename(log.with_name(log.name + ".1"))
        log.write_bytes(b"d\n")
        stopped[0] = True

    try:
        assert reader.lines() == []

        async def both() -> list[bytes]:
            got: list[bytes] = []

            async def emit(line: bytes) -> None:
                got.append(line)

            task = asyncio.ensure_future(reader.follow(lambda: stopped[0], emit))
            await asyncio.sleep(0.15)
            later()
            await asyncio.sleep(0.15)
            rotate_then_stop()
            await asyncio.wait_for(task, 5)
            return got

        assert asyncio.run(both()) == [b"a", b"b", b"c", b"d"]
    finally:
        reader.close()
