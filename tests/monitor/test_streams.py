"""Attach streams through a real monitor: pipes with Docker's framing, a pty with raw bytes and resize, several
clients, stdin with and without stdin-once, half-close, and output that nobody is attached to."""

from __future__ import annotations

import json
import socket
import time

import pytest

from berth.monitor import client
from tests.monitor.conftest import Monitors, read_all, streams

pytestmark = pytest.mark.root


def test_an_attach_made_before_start_sees_all_output_framed_by_stream(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 3"])
    assert c.call("status")["status"] == "created"
    attach = c.attach()
    c.start()
    out, err = streams(read_all(attach))
    assert out == b"out1\nout2\nout3\n"
    assert err == b"err1\nerr2\nerr3\n"
    assert c.exited()["exit_code"] == 3


def test_an_attach_for_stderr_only_gets_no_stdout(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "echo visible >&2; echo hidden"])
    attach = c.attach(stdout=False, stderr=True)
    c.start()
    assert streams(read_all(attach)) == (b"", b"visible\n")


def test_two_attached_clients_both_see_all_output(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"])
    first, second = c.attach(), c.attach()
    c.start()
    expected = b"".join(b"line%d\n" % i for i in range(2000))
    assert streams(read_all(first))[0] == expected
    assert streams(read_all(second))[0] == expected


def test_a_late_attach_sees_later_output_and_the_log_has_everything(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "echo early; read x; echo late"], stdin=True)
    c.start()
    deadline = time.monotonic() + 10
    while not (c.log_file.exists() and c.log_file.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    attach = c.attach(stdin=True)
    attach.sendall(b"go\n")
    assert streams(read_all(attach))[0] == b"late\n"  # no replay of "early"
    assert [e["log"] for e in c.log_entries()] == ["early\n", "late\n"]


def test_stdin_once_closes_the_containers_stdin_when_the_client_half_closes(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "cat; echo after-eof"], stdin=True, stdin_once=True)
    attach = c.attach(stdin=True)
    c.start()
    attach.sendall(b"hello ")
    attach.sendall(b"world\n")
    attach.shutdown(socket.SHUT_WR)
    out, _ = streams(read_all(attach))
    assert out == b"hello world\nafter-eof\n"
    assert c.exited()["exit_code"] == 0


def test_without_stdin_once_a_half_close_ends_only_that_clients_input(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read a; read b; echo got $a $b"], stdin=True)
    first = c.attach(stdin=True)
    c.start()
    first.sendall(b"one\n")
    first.shutdown(socket.SHUT_WR)
    time.sleep(0.2)
    assert c.call("status")["status"] == "running"  # stdin is still open
    second = c.attach(stdin=True)
    second.sendall(b"two\n")
    assert streams(read_all(first))[0] == b"got one two\n"  # the half-closed client still reads
    assert streams(read_all(second))[0] == b"got one two\n"
    assert c.exited()["exit_code"] == 0


def test_stdin_from_a_client_that_did_not_ask_for_it_is_dropped(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read a; echo got $a"], stdin=True)
    silent = c.attach(stdin=False)
    c.start()
    silent.sendall(b"ignored\n")
    talker = c.attach(stdin=True)
    talker.sendall(b"real\n")
    assert streams(read_all(talker))[0] == b"got real\n"
    assert streams(read_all(silent))[0] == b"got real\n"


def test_a_container_without_stdin_reads_eof(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "cat; echo done"])
    attach = c.attach(stdin=True)
    c.start()
    attach.sendall(b"never read\n")
    assert streams(read_all(attach))[0] == b"done\n"


def test_a_tty_gives_raw_output_and_a_resize_changes_stty_size(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "stty size; read x; stty size; echo err >&2"], tty=True, stdin=True)
    attach = c.attach(stdin=True)
    c.start()
    attach.settimeout(10)
    first = b""
    while b"\n" not in first:
        first += attach.recv(4096)
    assert c.call("resize", height=31, width=97) == {"ok": True}
    attach.sendall(b"\r")
    rest = read_all(attach)
    # raw bytes, no frame headers; the pty turns \n into \r\n and echoes the input
    assert b"31 97\r\n" in rest
    assert b"err\r\n" in rest
    assert not (first + rest).startswith(b"\x01\x00\x00\x00")
    entries = c.log_entries()
    assert all(e["stream"] == "stdout" for e in entries)
    assert any("31 97" in e["log"] for e in entries)


def test_a_tty_client_half_close_with_stdin_once_stops_input(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "read x; echo got $x"], tty=True, stdin=True, stdin_once=True)
    attach = c.attach(stdin=True)
    c.start()
    attach.sendall(b"abc\r")
    attach.shutdown(socket.SHUT_WR)
    assert b"got abc" in read_all(attach)


def test_a_flood_of_output_with_a_slow_client_is_neither_lost_nor_reordered(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "head -c 8000000 /dev/zero | tr '\\0' x; echo; echo end >&2"])
    attach = c.attach()
    c.start()
    time.sleep(1.0)  # the client reads nothing for a while: the monitor must hold the container back
    out, err = streams(read_all(attach))
    assert out == b"x" * 8_000_000 + b"\n"
    assert err == b"end\n"
    logged = "".join(e["log"] for e in c.log_entries() if e["stream"] == "stdout")
    assert logged == "x" * 8_000_000 + "\n"


@pytest.mark.slow
def test_a_client_that_never_reads_cannot_keep_a_killed_container_alive(monitors: Monitors) -> None:
    c = monitors.spawn(["sh", "-c", "while true; do echo spam spam spam spam spam spam spam; done"])
    stuck = c.attach()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.start()
    time.sleep(0.5)  # the client's buffers fill; the monitor holds the container's output back
    waiter = client.connect(c.options.socket)
    waiter.sendall(b'{"op": "wait"}\n')
    time.sleep(0.1)
    begun = time.monotonic()
    c.kill()
    assert json.loads(read_all(waiter))["exit_code"] == 137
    assert time.monotonic() - begun < 3  # not held up by the stuck client
    assert c.exited()["exit_code"] == 137
    assert time.monotonic() - begun < 15
    entries = c.log_entries()
    assert entries and all(e["log"] == "spam spam spam spam spam spam spam\n" for e in entries)
    stuck.close()
