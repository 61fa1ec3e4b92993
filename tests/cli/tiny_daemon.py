"""A tiny Engine API server on a unix socket, for testing the client's wire behaviour and berthd auto-start.

It answers what a test scripts (status, headers, body; chunked or not) and records every request it got,
with the body de-chunked. Run as a program (`python tiny_daemon.py --host unix:///x.sock`) it is a stand-in
berthd answering /_ping and /images/json, which is all auto-start needs to see.
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | list[bytes] = b""  # a list is sent chunked, one chunk per item
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[Seen], Reply]


class TinyDaemon:
    def __init__(self, socket_path: Path, api_version: str | None = "1.41", head_ping_allowed: bool = True) -> None:
        self.socket_path = socket_path
        self.api_version = api_version
        self.head_ping_allowed = head_ping_allowed
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[Seen] = []
        self.connections = 0  # TCP/unix connections accepted
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, path: str, reply: Reply | Route) -> None:
        self.routes[(method, path)] = reply if callable(reply) else (lambda _seen, r=reply: r)

    def handle(self, seen: Seen) -> Reply:
        self.seen.append(seen)
        if seen.path == "/_ping":
            if seen.method == "HEAD" and not self.head_ping_allowed:
                return Reply(405)
            headers = {"Api-Version": self.api_version} if self.api_version else {}
            return Reply(200, b"OK" if seen.method == "GET" else b"", headers)
        route = self.routes.get((seen.method, seen.path.split("?")[0]))
        if route is None:
            return Reply(404, json.dumps({"message": f"page not found: {seen.path}"}).encode())
        return route(seen)

    def start(self) -> TinyDaemon:
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                daemon.connections += 1
                super().setup()

            def _serve(self) -> None:
                body = b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                elif self.headers.get("Content-Length"):
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                reply = daemon.handle(Seen(self.command, self.path, dict(self.headers), body))
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if isinstance(reply.body, list):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in reply.body:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)

            do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _serve

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self._server = Server(str(self.socket_path), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> TinyDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _main(argv: list[str]) -> None:
    host = argv[argv.index("--host") + 1]
    path = Path(host.removeprefix("unix://"))
    if os.environ.get("TINY_DAEMON_FAIL"):
        print("tiny daemon refusing to start, as asked", flush=True)
        sys.exit(3)
    d = TinyDaemon(path)
    d.route("GET", "/v1.41/images/json", Reply(200, b"[]", {"Content-Type": "application/json"}))
    d.start()
    print(f"tiny daemon listening on {host}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    _main(sys.argv)
