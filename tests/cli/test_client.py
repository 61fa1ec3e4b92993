"""EngineClient on the wire, against a real HTTP server on a real unix socket (tests/cli/tiny_daemon.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.client.hosts import DaemonHost
from berth.client.transport import STATUS_KINDS, EngineClient, file_chunks, from_daemon, path_segment
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, Unavailable
from tests.cli.tiny_daemon import Reply, TinyDaemon


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "d.sock"


@pytest.fixture
def daemon(sock: Path) -> Iterator[TinyDaemon]:
    with TinyDaemon(sock) as d:
        yield d


def client_for(sock: Path) -> EngineClient:
    return EngineClient(DaemonHost.parse(f"unix://{sock}"), timeout=10)


@pytest.mark.parametrize(("server", "expected"), [("1.41", "1.41"), ("1.50", "1.44"), ("1.44", "1.44"),
                                                  ("1.9", "1.9"), (None, "1.24")])
def test_version_is_the_lower_of_the_daemons_and_ours(sock: Path, server: str | None, expected: str) -> None:
    with TinyDaemon(sock, api_version=server) as d, client_for(sock) as c:
        d.route("GET", f"/v{expected}/images/json", Reply(200, b"[]"))
        assert c.get_json("/images/json") == []
        assert [s.method for s in d.seen] == ["HEAD", "GET"]
        assert d.seen[1].path == f"/v{expected}/images/json"


def test_a_daemon_that_refuses_head_ping_is_asked_with_get(sock: Path) -> None:
    with TinyDaemon(sock, head_ping_allowed=False) as d, client_for(sock) as c:
        assert c.api_version == "1.41"
        assert [(s.method, s.path) for s in d.seen] == [("HEAD", "/_ping"), ("GET", "/_ping")]


def test_sequential_calls_share_one_keep_alive_connection(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("GET", "/v1.41/images/json", Reply(200, b"[1]"))
    with client_for(sock) as c:
        for _ in range(3):
            assert c.get_json("/images/json") == [1]
    assert len(daemon.seen) == 4  # the ping and three calls
    assert daemon.connections == 1


def test_query_values_encode_bools_json_and_repeats(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("GET", "/v1.41/images/get", Reply(200, b"tar"))
    with client_for(sock) as c:
        c.call("GET", "/images/get", {"names": ("a:1", "b/c"), "all": True, "quiet": False, "skip": None,
                                      "filters": {"dangling": {"true": True}}})
    path = daemon.seen[-1].path
    assert path == ("/v1.41/images/get?names=a%3A1&names=b%2Fc&all=1&quiet=0"
                    "&filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D")


@pytest.mark.parametrize(("status", "kind"), [(404, NotFound), (409, Conflict), (400, InvalidArgument),
                                              (503, Unavailable), (500, BerthError), (502, BerthError)])
def test_error_statuses_map_to_berth_kinds_keeping_the_daemons_message(daemon: TinyDaemon, sock: Path,
                                                                       status: int, kind: type) -> None:
    daemon.route("DELETE", "/v1.41/images/x", Reply(status, json.dumps({"message": "No such image: x"}).encode()))
    with client_for(sock) as c, pytest.raises(kind) as info:
        c.delete_json("/images/x")
    assert type(info.value) is kind
    assert str(info.value) == "No such image: x"
    cause = from_daemon(info.value)
    assert cause is not None and (cause.status, cause.message) == (status, "No such image: x")
    assert STATUS_KINDS.get(status, BerthError) is kind


def test_a_non_json_error_body_is_kept_as_text(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("GET", "/v1.41/info", Reply(500, b"plain failure\n"))
    with client_for(sock) as c, pytest.raises(BerthError, match="^plain failure$"):
        c.get_json("/info")


def test_nobody_listening_is_unavailable_with_dockers_words(tmp_path: Path) -> None:
    with client_for(tmp_path / "none.sock") as c, pytest.raises(Unavailable) as info:
        c.ping()
    assert str(info.value) == (f"Cannot connect to the Docker daemon at unix://{tmp_path}/none.sock. "
                               "Is the docker daemon running?")
    assert from_daemon(info.value) is None


def test_a_socket_file_nobody_accepts_on_is_unavailable(tmp_path: Path) -> None:
    import socket
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # bound, never listening: connect() is refused
    with client_for(path) as c, pytest.raises(Unavailable):
        c.ping()


def test_upload_streams_a_file_chunked_and_reads_json_lines(daemon: TinyDaemon, sock: Path) -> None:
    lines = [b'{"status":"one"}\r\n', b'{"stream":"Loaded image: x:1\\n"}\r\n{"aux":', b'{"ID":"sha256:ab"}}\r\n']
    daemon.route("POST", "/v1.41/images/load", Reply(200, lines, {"Content-Type": "application/json"}))
    payload = bytes(range(256)) * 1000
    with client_for(sock) as c:
        got = list(c.stream_json("POST", "/images/load", {"quiet": True}, body=file_chunks(io.BytesIO(payload))))
    assert got == [{"status": "one"}, {"stream": "Loaded image: x:1\n"}, {"aux": {"ID": "sha256:ab"}}]
    seen = daemon.seen[-1]
    assert seen.body == payload
    assert seen.headers["Transfer-Encoding"] == "chunked"
    assert seen.headers["Content-Type"] == "application/x-tar"


def test_a_stream_cut_inside_a_value_is_an_error(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("POST", "/v1.41/images/create", Reply(200, [b'{"status":"ok"}\n{"stat']))
    with client_for(sock) as c:
        stream = c.stream_json("POST", "/images/create", {"fromSrc": "-"})
        assert next(stream) == {"status": "ok"}
        with pytest.raises(Unavailable, match="inside a JSON value"):
            next(stream)


def test_a_multibyte_character_split_across_chunks_decodes(daemon: TinyDaemon, sock: Path) -> None:
    text = '{"stream":"日本"}\n'.encode()
    daemon.route("POST", "/v1.41/x", Reply(200, [text[:12], text[12:]]))
    with client_for(sock) as c:
        assert list(c.stream_json("POST", "/x")) == [{"stream": "日本"}]


def test_download_copies_the_body(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("GET", "/v1.41/images/get", Reply(200, [b"a" * 70000, b"b" * 5]))
    out = io.BytesIO()
    with client_for(sock) as c:
        assert c.download("/images/get", {"names": ("x",)}, out) == 70005
    assert out.getvalue() == b"a" * 70000 + b"b" * 5


def test_posts_without_a_body_send_content_length_zero(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("POST", "/v1.41/images/x/tag", Reply(201))
    with client_for(sock) as c:
        c.call("POST", "/images/x/tag", {"repo": "docker.io/library/y", "tag": "1"})
    assert daemon.seen[-1].headers["Content-Length"] == "0"


def test_names_keep_slashes_and_colons_in_the_path() -> None:
    assert path_segment("reg:5000/team/x:1") == "reg:5000/team/x:1"
    assert path_segment("a b?c#d") == "a%20b%3Fc%23d"


def test_a_kept_alive_connection_the_daemon_closed_is_reopened_once(daemon: TinyDaemon, sock: Path) -> None:
    daemon.route("GET", "/v1.41/a", Reply(200, b"1", {"Connection": "close"}))
    daemon.route("GET", "/v1.41/b", Reply(200, b"2"))
    with client_for(sock) as c:
        assert c.get_json("/a") == 1
        assert c.get_json("/b") == 2
        assert c.get_json("/b") == 2
    assert daemon.connections == 2


def test_a_body_framed_by_closing_the_connection_is_read_to_the_end(sock: Path, tmp_path: Path) -> None:
    import socket
    import threading

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.listen(1)

    def serve() -> None:
        for answer in (b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n",
                       b"HTTP/1.0 200 OK\r\n\r\n[1, 2, 3]"):
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(answer)
            conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_for(sock) as c:
            assert c.get_json("/x") == [1, 2, 3]
    finally:
        t.join(5)
        server.close()


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
def test_a_peer_that_does_not_speak_http_is_unavailable(sock: Path, garbage: bytes) -> None:
    import socket
    import threading

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n")
        conn.recv(65536)
        conn.sendall(garbage)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_for(sock) as c:
            assert c.api_version == "1.41"
            with pytest.raises(Unavailable):
                c.get_json("/x")
    finally:
        t.join(5)
        server.close()
