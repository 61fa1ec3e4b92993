"""The monitor's event loop: relays the container's output to its log and to attach clients, client input to its
stdin, answers requests on the control socket, reaps the init and records how it ended.

One thread, one `select.poll` loop, non-blocking fds (no asyncio: it would double the monitor's start time and add
megabytes of RSS). Nothing is lost while nobody is attached: every byte goes to the log first. A client that reads
too slowly holds the container's output back (the pipe fills) instead of losing it, as with Docker's attach.
May import: berth.runtime, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import sys
import time

from berth.errors import BerthError, InvalidArgument
from berth.monitor.drivers import make_driver
from berth.monitor.listen import listen_unix
from berth.monitor.logfile import JsonLog, timestamp
from berth.monitor.protocol import MAX_REQUEST, Attach, Resize, Start, Status, Wait, frame, parse_request, reply
from berth.util import linux
from berth.util.atomic import write_atomic

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing costs milliseconds on the container start path
if TYPE_CHECKING:
    from typing import Any

    from berth.monitor.drivers import Driver
    from berth.monitor.options import MonitorOptions

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, what Docker shows for "never"
DRAIN_SECONDS = 2.0     # after the init exits, how long output still held by leftover writers is awaited
CLIENT_BACKLOG = 1 << 20  # bytes queued for one attach client before the container's output is held back
STDIN_BACKLOG = 1 << 20
FINAL_FLUSH_SECONDS = 5.0
PIPE_SIZE = 1 << 20     # the container's stdout/stderr pipes: room to run on while the monitor writes the log
READ_SIZE = 1 << 16     # per read: larger reads of short lines were slower (bigger line lists)
F_SETPIPE_SZ = 1031

_IN = select.POLLIN | select.POLLPRI
_OUT = select.POLLOUT


class Client:
    """One connection on the control socket: first a request line, then maybe an attach stream."""
    __slots__ = ("sock", "fd", "inbuf", "outbuf", "kind", "reading", "stdin", "streams")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.kind = "request"  # request -> attach | wait | closing
        self.reading = True
        self.stdin = False
        self.streams: frozenset[str] = frozenset()


def _nonblocking(fd: int) -> int:
    os.set_blocking(fd, False)
    return fd


def _noop(_sig: int, _frame: object) -> None:
    """A Python handler, not SIG_IGN: the disposition of an ignored signal would pass into the container."""


class Monitor:
    def __init__(self, opts: MonitorOptions, driver: Driver | None = None) -> None:
        self.opts = opts
        self.driver = driver or make_driver(opts.runtime, opts.container_id, opts.bundle, opts.state_root,
                                            opts.container_dir)
        self.listener: socket.socket | None = None
        self.log: JsonLog | None = None
        self.log_lost = False
        self.pid = 0
        self.status = "created"
        self.started_at = ZERO_TIME
        self.exit: dict[str, Any] | None = None
        self.outputs: dict[int, str] = {}
        self.master: int | None = None
        self.stdin_fd: int | None = None
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.clients: dict[int, Client] = {}
        self.wake_r = self.wake_w = -1
        self.drain_until = 0.0

    # ---- setup -----------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Socket, log, stdio, then the container (created, not started). On failure nothing is left behind."""
        opts = self.opts
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        self.wake_r, self.wake_w = os.pipe()
        _nonblocking(self.wake_r)
        _nonblocking(self.wake_w)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _noop)
        self.listener = listen_unix(opts.socket, "a monitor")
        self.listener.setblocking(False)
        # only now: had another monitor answered on the socket, these files would be its container's
        for name in ("exit.json", "started.json"):
            try:
                os.unlink(os.path.join(opts.container_dir, name))
            except FileNotFoundError:
                pass
        child_ends: list[int] = []
        try:
            self.log = JsonLog(opts.log_path, opts.log_max_size, opts.log_max_file)
            stdio = None
            if not opts.tty:
                stdio = self._pipes(child_ends)
            self.pid, self.master = self.driver.create(stdio, opts.tty)
            if self.master is not None:
                _nonblocking(self.master)
                self.outputs[self.master] = "stdout"
                if opts.stdin:
                    self.stdin_fd = self.master
        except BaseException:
            self._close_all()
            raise
        finally:
            for fd in child_ends:
                os.close(fd)

    def _pipes(self, child_ends: list[int]) -> tuple[int, int, int]:
        if self.opts.stdin:
            r, w = os.pipe()
            child_ends.append(r)
            self.stdin_fd = _nonblocking(w)
            stdin = r
        else:
            stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            child_ends.append(stdin)
        ends = [stdin]
        for stream in ("stdout", "stderr"):
            r, w = os.pipe()
            child_ends.append(w)
            try:
                fcntl.fcntl(r, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # over /proc/sys/fs/pipe-max-size for an unprivileged monitor: the default 64 KiB does
            self.outputs[_nonblocking(r)] = stream
            ends.append(w)
        return ends[0], ends[1], ends[2]

    # ---- loop ------------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until the container has exited and its output is drained; then record the exit and clean up."""
        try:
            self._reap()
            while self.exit is None or (self.outputs and time.monotonic() < self.drain_until):
                self._step()
        except BaseException as exc:  # noqa: BLE001 (a monitor bug must still end the container cleanly)
            self._abort(exc)
        self._finish()
        return 0

    def _interest(self) -> dict[int, int]:
        want: dict[int, int] = {self.wake_r: _IN}
        if self.listener is not None:
            want[self.listener.fileno()] = _IN
        # after the exit, read on regardless: what is still in the pipes must reach the log before the end
        held = self.exit is None and any(len(c.outbuf) > CLIENT_BACKLOG for c in self.clients.values())
        if not held:
            for fd in self.outputs:
                want[fd] = _IN
        if self.stdin_buf and self.stdin_fd is not None:
            want[self.stdin_fd] = want.get(self.stdin_fd, 0) | _OUT
        stdin_full = len(self.stdin_buf) > STDIN_BACKLOG
        for c in self.clients.values():
            events = 0
            if c.reading and not (c.kind == "attach" and c.stdin and stdin_full):
                events |= _IN
            if c.outbuf:
                events |= _OUT
            want[c.fd] = events
        return want

    def _step(self) -> None:
        poller = select.poll()
        for fd, events in self._interest().items():
            poller.register(fd, events)
        timeout = None if self.exit is None else max(0.0, (self.drain_until - time.monotonic()) * 1000)
        for fd, events in poller.poll(timeout):
            if fd == self.wake_r:
                self._drain_wake()
                self._reap()
            elif self.listener is not None and fd == self.listener.fileno():
                self._accept()
            elif fd in self.outputs and events & (_IN | select.POLLHUP | select.POLLERR):
                self._on_output(fd)
                if fd == self.stdin_fd and events & _OUT:
                    self._flush_stdin()
            elif fd == self.stdin_fd:
                self._flush_stdin()
            elif fd in self.clients:
                client = self.clients[fd]
                if events & _OUT:
                    self._flush_client(client)
                if fd in self.clients and events & (_IN | select.POLLHUP | select.POLLERR):
                    self._on_client(client)

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.exit is None:
                self._on_exit(os.waitstatus_to_exitcode(status))

    def _on_exit(self, code: int) -> None:
        try:
            oom = self.driver.oom_killed()
        except (BerthError, OSError) as exc:
            _warn(f"cannot tell whether the container was OOM-killed: {exc}")
            oom = False
        self.exit = {"exit_code": 128 - code if code < 0 else code, "oom_killed": oom,
                     "finished_at": timestamp(), "started_at": self.started_at}
        self.status = "exited"
        self.drain_until = time.monotonic() + DRAIN_SECONDS
        self.stdin_buf.clear()
        for client in list(self.clients.values()):
            if client.kind == "wait":
                self._send(client, reply(self.exit), close=True)

    # ---- container output and input --------------------------------------------------------------------------

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: the pty's last slave holder is gone
        if not data:
            del self.outputs[fd]
            if fd != self.master:  # the pty master is also stdin: _close_all closes it, once
                os.close(fd)
            return
        stream = self.outputs[fd]
        assert self.log is not None
        try:
            self.log.write(stream, data)
        except OSError as exc:
            # A full disk (ENOSPC) loses the entry, as dockerd's json-file does; the container and its attached
            # clients go on. Letting it raise would end the monitor and take the container with it (exit 137).
            if not self.log_lost:
                _warn(f"log entries are being lost: {exc}")
            self.log_lost = True
        chunk = data if self.master is not None else frame(1 if stream == "stdout" else 2, data)
        for client in list(self.clients.values()):
            if client.kind == "attach" and stream in client.streams:
                client.outbuf += chunk
                self._flush_client(client)

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf)
            except BlockingIOError:
                return
            except OSError:
                self.stdin_buf.clear()  # the container closed its stdin (EPIPE) or is gone
                break
            del self.stdin_buf[:n]
        if self.stdin_closing:
            self._close_stdin()

    def _close_stdin(self) -> None:
        fd, self.stdin_fd = self.stdin_fd, None
        self.stdin_closing = False
        if fd is not None and fd != self.master:
            os.close(fd)  # with a pty there is no separate stdin to close: input just stops, as with Docker

    # ---- clients ---------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _warn(f"accept: {exc}")
                return
            sock.setblocking(False)
            self.clients[sock.fileno()] = Client(sock)

    def _drop(self, client: Client) -> None:
        self.clients.pop(client.fd, None)
        client.sock.close()

    def _send(self, client: Client, data: bytes, *, close: bool = False) -> None:
        client.outbuf += data
        if close:
            client.kind = "closing"
            client.reading = False
        self._flush_client(client)

    def _flush_client(self, client: Client) -> None:
        while client.outbuf:
            try:
                n = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(client)  # the client went away (EPIPE, ECONNRESET)
                return
            del client.outbuf[:n]
        if client.kind == "closing":
            self._drop(client)

    def _on_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        if client.kind == "request":
            if not data:
                self._drop(client)
                return
            client.inbuf += data
            end = client.inbuf.find(b"\n")
            if end < 0:
                if len(client.inbuf) > MAX_REQUEST:
                    self._send(client, reply({"error": "request line too long"}), close=True)
                return
            line, rest = bytes(client.inbuf[:end]), bytes(client.inbuf[end + 1:])
            client.inbuf.clear()
            self._handle(client, line)
            if rest and client.kind == "attach":
                self._on_input(client, rest)
        elif client.kind == "attach":
            self._on_input(client, data)
        elif not data:
            self._drop(client)  # a waiter hung up

    def _on_input(self, client: Client, data: bytes) -> None:
        if not data:
            client.reading = False  # half-closed: it still gets output
            if client.stdin and self.opts.stdin_once and self.stdin_fd is not None:
                self.stdin_closing = True
                self._flush_stdin()
            return
        if client.stdin and self.stdin_fd is not None and not self.stdin_closing and self.exit is None:
            self.stdin_buf += data
            self._flush_stdin()

    def _handle(self, client: Client, line: bytes) -> None:
        try:
            request = parse_request(line)
        except InvalidArgument as exc:
            self._send(client, reply({"error": str(exc)}), close=True)
            return
        if isinstance(request, Attach):
            client.kind = "attach"
            client.stdin = request.stdin and self.opts.stdin
            client.streams = frozenset(s for s, on in (("stdout", request.stdout), ("stderr", request.stderr)) if on)
            if self.exit is not None and not self.outputs:
                self._send(client, b"", close=True)
        elif isinstance(request, Wait):
            if self.exit is not None:
                self._send(client, reply(self.exit), close=True)
            else:
                client.kind = "wait"
        elif isinstance(request, Start):
            self._send(client, reply(self._start()), close=True)
        elif isinstance(request, Resize):
            self._send(client, reply(self._resize(request)), close=True)
        elif isinstance(request, Status):
            self._send(client, reply(self._status()), close=True)

    def _start(self) -> dict[str, Any]:
        if self.status != "created":
            return {"error": f"container {self.opts.container_id} is {self.status}: only a created one can start"}
        try:
            self.driver.start()
        except BerthError as exc:
            return {"error": str(exc)}
        self.status = "running"
        self.started_at = timestamp()
        record = {"pid": self.pid, "started_at": self.started_at}
        write_atomic(os.path.join(self.opts.container_dir, "started.json"), reply(record), durable=False)
        return {"ok": True}

    def _resize(self, request: Resize) -> dict[str, Any]:
        if self.master is None:
            return {"error": f"container {self.opts.container_id} has no tty to resize"}
        import fcntl  # only resizes pay for these
        import struct
        import termios

        try:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", request.height, request.width, 0, 0))
        except OSError as exc:
            return {"error": f"resizing the tty: {exc.strerror}"}
        return {"ok": True}

    def _status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": self.pid, "status": self.status, "monitor_pid": os.getpid(),
                               "started_at": self.started_at}
        if self.exit is not None:
            out.update(self.exit)
        return out

    # ---- the end ---------------------------------------------------------------------------------------------

    def _abort(self, exc: BaseException) -> None:
        """A bug in the loop: end the container rather than leave it without stdio, and say why."""
        import traceback

        _warn("monitor failed; killing the container:\n" + "".join(traceback.format_exception(exc)))
        if self.exit is None and self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
                self._on_exit(os.waitstatus_to_exitcode(status))
            except (OSError, BerthError):
                self.exit = {"exit_code": 255, "oom_killed": False, "finished_at": timestamp(),
                             "started_at": self.started_at}
        assert self.exit is not None
        self.exit["error"] = f"monitor failed: {exc}"

    def _finish(self) -> None:
        """Record the exit, delete the container, flush attach clients, answer waiters, leave no socket."""
        assert self.exit is not None
        for fd in list(self.outputs):
            self._on_output(fd)  # whatever the drain deadline left unread
        if self.log is not None:
            self.log.close()
        try:
            self.driver.delete()
        except BerthError as exc:
            _warn(f"deleting the container: {exc}")
        # Delete before exit.json: once the engine sees exit.json it may start the same container again.
        try:
            write_atomic(os.path.join(self.opts.container_dir, "exit.json"), reply(self.exit), durable=False)
        except OSError as exc:
            _warn(f"cannot write exit.json ({exc}); waiters still get the exit status")
        if self.listener is not None:
            try:
                os.unlink(self.opts.socket)
            except FileNotFoundError:
                pass
            self._accept()  # connections already queued still get their answer
        deadline = time.monotonic() + FINAL_FLUSH_SECONDS
        for client in list(self.clients.values()):
            if client.kind == "request":
                self._late_request(client, deadline)
            elif client.kind == "wait":
                client.outbuf += reply(self.exit)
            client.kind = "closing"
            client.reading = False
            self._flush_client(client)  # waiters' answers go out now, whatever a stuck attach client does
        self._flush_until(deadline)
        for client in list(self.clients.values()):
            self._drop(client)  # a client that did not read its output in time loses the rest
        self._close_all()

    def _flush_until(self, deadline: float) -> None:
        while self.clients and (remaining := deadline - time.monotonic()) > 0:
            poller = select.poll()
            for client in self.clients.values():
                poller.register(client.fd, _OUT)
            for fd, _ in poller.poll(remaining * 1000):
                if fd in self.clients:
                    self._flush_client(self.clients[fd])

    def _late_request(self, client: Client, deadline: float) -> None:
        assert self.exit is not None
        try:
            client.sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
            # a blocking read: the request may be on its way
            while b"\n" not in client.inbuf and len(client.inbuf) < MAX_REQUEST:
                data = client.sock.recv(4096)
                if not data:
                    return
                client.inbuf += data
            request = parse_request(bytes(client.inbuf.split(b"\n", 1)[0]))
        except (OSError, InvalidArgument):
            return
        finally:
            client.sock.setblocking(False)
        if isinstance(request, Wait):
            client.outbuf += reply(self.exit)
        elif isinstance(request, Status):
            client.outbuf += reply(self._status())
        elif not isinstance(request, Attach):
            client.outbuf += reply({"error": f"container {self.opts.container_id} has exited"})

    def _close_all(self) -> None:
        for fd in list(self.outputs):
            if fd != self.master:
                os.close(fd)
        self.outputs.clear()
        if self.stdin_fd is not None and self.stdin_fd != self.master:
            os.close(self.stdin_fd)
        self.stdin_fd = None
        if self.master is not None:
            os.close(self.master)
            self.master = None
        if self.log is not None:
            self.log.close()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            if self.exit is None:
                try:
                    os.unlink(self.opts.socket)
                except FileNotFoundError:
                    pass


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"berth-monitor[{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
