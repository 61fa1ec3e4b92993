"""The embedded DNS server of user-defined networks: 127.0.0.11:53 (UDP and TCP) inside each container's network
namespace, as Docker's. It answers A queries for the names a container may see on its networks (TTL 600), an empty
NOERROR for AAAA of those names, and forwards everything else unchanged to the host's resolvers, relaying their
answer (SERVFAIL when none answers in time).

The wire codec (RFC 1035: header, questions, records, name compression on read) is pure and typed; the server is
one selector thread for every attached namespace, a small pool of worker threads answering, a larger one forwarding
(so our names never wait behind a slow upstream), and one thread per TCP connection. Its sockets are created inside the namespace by a short-lived thread that enters it
with setns (a thread's network namespace is its own) and keep living there; forwarding goes out from berthd's
namespace.

May import: berth.util, berth.errors. Never the engine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import Conflict, InvalidArgument, RuntimeFailure, Unavailable
from berth.util import linux

log = logging.getLogger("berthd")

LISTEN_ADDRESS = "127.0.0.11"
LISTEN_PORT = 53
TTL = 600                       # Docker's for container names

TYPE_A = 1
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

_QR = 0x8000
_OPCODE = 0x7800
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
_RCODE = 0x000F

_HEADER = struct.Struct("!HHHHHH")
_TAIL = struct.Struct("!HH")                 # type, class after a question's name
_RR = struct.Struct("!HHIH")                 # type, class, ttl, rdlength after a record's name
_MAX_NAME = 255
_MAX_JUMPS = 64
_UDP_MIN = 512
_OUR_UDP_SIZE = 1232                         # the EDNS buffer size we advertise (the DNS flag day's value)
_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_-]{1,63}")


# ---------------------------------------------------------------------------------------------------- wire codec

@dataclass(frozen=True, slots=True)
class Header:
    id: int
    flags: int
    qdcount: int = 0
    ancount: int = 0
    nscount: int = 0
    arcount: int = 0

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) < _HEADER.size:
            raise InvalidArgument(f"DNS message of {len(data)} bytes is shorter than its 12-byte header")
        return cls(*_HEADER.unpack_from(data))

    def encode(self) -> bytes:
        return _HEADER.pack(self.id, self.flags, self.qdcount, self.ancount, self.nscount, self.arcount)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & _QR)

    @property
    def opcode(self) -> int:
        return (self.flags & _OPCODE) >> 11

    @property
    def rcode(self) -> int:
        return self.flags & _RCODE

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TC)


@dataclass(frozen=True, slots=True)
class Question:
    labels: tuple[bytes, ...]
    qtype: int
    qclass: int = CLASS_IN

    def text_name(self) -> str | None:
        """The name as 'a.b.c' when every label is a plain host-name label (letters, digits, '-', '_'), else None:
        such a name can be nobody's container name or alias, and a label with a dot in it must not pass for two."""
        if not self.labels or not all(_PLAIN_LABEL.fullmatch(label) for label in self.labels):
            return None
        return ".".join(label.decode("ascii") for label in self.labels)

    def encode(self) -> bytes:
        return encode_name(self.labels) + _TAIL.pack(self.qtype, self.qclass)


@dataclass(frozen=True, slots=True)
class Record:
    labels: tuple[bytes, ...]
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes

    def encode(self, name: bytes | None = None) -> bytes:
        """name: the already-encoded owner name (e.g. a compression pointer), else the labels spelled out."""
        owner = encode_name(self.labels) if name is None else name
        return owner + _RR.pack(self.rtype, self.rclass, self.ttl, len(self.rdata)) + self.rdata


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authorities: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> Message:
        """Every section, names decompressed; InvalidArgument for anything malformed (bytes after the last record
        are ignored, as most servers do)."""
        header = Header.parse(data)
        offset = _HEADER.size
        questions: list[Question] = []
        for _ in range(header.qdcount):
            labels, offset = read_name(data, offset)
            if offset + _TAIL.size > len(data):
                raise InvalidArgument("DNS question cut short after its name")
            qtype, qclass = _TAIL.unpack_from(data, offset)
            offset += _TAIL.size
            questions.append(Question(labels, qtype, qclass))
        sections: list[tuple[Record, ...]] = []
        for count in (header.ancount, header.nscount, header.arcount):
            records: list[Record] = []
            for _ in range(count):
                record, offset = _read_record(data, offset)
                records.append(record)
            sections.append(tuple(records))
        return cls(header, tuple(questions), *sections)

    def edns_udp_size(self) -> int | None:
        """The UDP payload size the sender's OPT record advertises (at least 512), None without EDNS."""
        for record in self.additionals:
            if record.rtype == TYPE_OPT:
                return max(_UDP_MIN, record.rclass)
        return None

    def encode(self) -> bytes:
        header = Header(self.header.id, self.header.flags, len(self.questions), len(self.answers),
                        len(self.authorities), len(self.additionals))
        parts = [header.encode(), *(q.encode() for q in self.questions)]
        parts += [r.encode() for r in (*self.answers, *self.authorities, *self.additionals)]
        return b"".join(parts)


def read_name(data: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """The labels of the name at offset, following compression pointers (only backwards, a bounded number of
    times), and the offset just past the name as it is written there."""
    labels: list[bytes] = []
    end: int | None = None
    length = 1                      # the root's zero byte
    pos = offset
    jumps = 0
    while True:
        if pos >= len(data):
            raise InvalidArgument("DNS name runs past the end of the message")
        size = data[pos]
        if size & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise InvalidArgument("DNS compression pointer cut short")
            target = ((size & 0x3F) << 8) | data[pos + 1]
            jumps += 1
            if target >= pos or jumps > _MAX_JUMPS:
                raise InvalidArgument("DNS compression pointer does not point backwards")
            if end is None:
                end = pos + 2
            pos = target
            continue
        if size & 0xC0:
            raise InvalidArgument(f"DNS label type {size >> 6:#x} is not supported")
        if size == 0:
            return tuple(labels), (pos + 1 if end is None else end)
        label = data[pos + 1:pos + 1 + size]
        if len(label) != size:
            raise InvalidArgument("DNS label runs past the end of the message")
        length += size + 1
        if length > _MAX_NAME:
            raise InvalidArgument("DNS name is longer than 255 bytes")
        labels.append(label)
        pos += 1 + size


def _read_record(data: bytes, offset: int) -> tuple[Record, int]:
    labels, offset = read_name(data, offset)
    if offset + _RR.size > len(data):
        raise InvalidArgument("DNS record cut short after its name")
    rtype, rclass, ttl, rdlength = _RR.unpack_from(data, offset)
    offset += _RR.size
    rdata = data[offset:offset + rdlength]
    if len(rdata) != rdlength:
        raise InvalidArgument("DNS record data runs past the end of the message")
    return Record(labels, rtype, rclass, ttl, rdata), offset + rdlength


def encode_name(labels: Sequence[bytes]) -> bytes:
    out = bytearray()
    for label in labels:
        if not 1 <= len(label) <= 63:
            raise InvalidArgument(f"DNS label {label!r} must be 1 to 63 bytes")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > _MAX_NAME:
        raise InvalidArgument("DNS name is longer than 255 bytes")
    return bytes(out)


def name_labels(name: str) -> tuple[bytes, ...]:
    """'web.example.' or 'web.example' as labels."""
    stripped = name[:-1] if name.endswith(".") else name
    return tuple(part.encode("ascii") for part in stripped.split(".")) if stripped else ()


def encode_query(name: str, qtype: int = TYPE_A, *, id: int = 0, recursion: bool = True,
                 edns_udp_size: int | None = None) -> bytes:
    additionals = (Record((), TYPE_OPT, edns_udp_size, 0, b""),) if edns_udp_size is not None else ()
    flags = _RD if recursion else 0
    return Message(Header(id, flags), (Question(name_labels(name), qtype),), additionals=additionals).encode()


def reply(query: Message, rcode: int, addresses: Sequence[ipaddress.IPv4Address] = (), *,
          limit: int = 65535) -> bytes:
    """The response to query: its question echoed, one A record per address (owner name compressed to the
    question's), an OPT record when the query had one; answers dropped from the end with TC set when the whole
    would not fit in limit bytes."""
    flags = _QR | (query.header.flags & (_OPCODE | _RD)) | _RA | rcode
    question = b"".join(q.encode() for q in query.questions)
    opt = Record((), TYPE_OPT, _OUR_UDP_SIZE, 0, b"").encode() if query.edns_udp_size() is not None else b""
    pointer = b"\xc0\x0c" if query.questions else None
    answers = [Record((), TYPE_A, CLASS_IN, TTL, a.packed).encode(pointer) for a in addresses]
    room = limit - _HEADER.size - len(question) - len(opt)
    kept = 0
    for answer in answers:
        if room < len(answer):
            flags |= _TC
            break
        room -= len(answer)
        kept += 1
    header = Header(query.header.id, flags, len(query.questions), kept, 0, 1 if opt else 0)
    return header.encode() + question + b"".join(answers[:kept]) + opt


def format_error(data: bytes) -> bytes | None:
    """FORMERR for a query too broken to parse but whose header can be read; None (drop it) when even that fails
    or when it is a response, which must never be answered (two servers would bounce errors forever)."""
    try:
        header = Header.parse(data)
    except InvalidArgument:
        return None
    if header.is_response:
        return None
    return Header(header.id, _QR | (header.flags & (_OPCODE | _RD)) | _RA | FORMERR).encode()


def host_resolvers(path: str | Path = "/etc/resolv.conf",
                   systemd_path: str | Path | None = "/run/systemd/resolve/resolv.conf") -> list[str]:
    """The nameservers of a resolv.conf, in order, without loopback ones (a resolver on the host's loopback, such
    as systemd-resolved's 127.0.0.53, is not the one a container should be sent to) nor unparsable ones. When
    loopback ones were all there was, the ones systemd-resolved itself uses (systemd_path), as Docker does. A
    missing file means none."""
    servers, loopback = _nameservers(path)
    if not servers and loopback and systemd_path is not None:
        servers, _ = _nameservers(systemd_path)
    return servers


def _nameservers(path: str | Path) -> tuple[list[str], bool]:
    """(the non-loopback nameservers, whether loopback ones were skipped)."""
    try:
        text = Path(path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return [], False
    servers: list[str] = []
    loopback = False
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            address = ipaddress.ip_address(words[1])
        except ValueError:
            continue
        if address.is_loopback:
            loopback = True
        else:
            servers.append(words[1])
    return servers, loopback


@dataclass(frozen=True, slots=True)
class Upstream:
    family: socket.AddressFamily
    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """'192.0.2.1', '192.0.2.1:5353', '2001:db8::1', '[2001:db8::1]:5353'."""
        host, port = text, 53
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise InvalidArgument(f"invalid DNS server {text!r}")
            port = _port(rest[1:], text) if rest else 53
        elif text.count(":") == 1:
            host, _, rest = text.partition(":")
            port = _port(rest, text)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise InvalidArgument(f"invalid DNS server {text!r}: not an IP address") from None
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return cls(family, host, port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument(f"invalid DNS server {whole!r}: bad port {text!r}")
    return int(text)


# ---------------------------------------------------------------------------------------------------- the server

_WORKERS = 4
_FORWARDERS = 16
_MAX_PENDING = 512              # datagrams waiting for a worker; more are dropped (clients retry)
_MAX_TCP = 64                   # concurrent TCP clients over every namespace
_TCP_IDLE = 10.0                # seconds a TCP client may stay silent between queries


@dataclass(eq=False)
class _Attachment:
    key: str
    netns: Path
    udp: socket.socket
    tcp: socket.socket
    clients: set[socket.socket] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


def _bind_in_netns(netns: Path) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to 127.0.0.11:53 inside the namespace pinned at netns, made by a thread that
    enters it (setns changes only the calling thread's network namespace) and ends right after."""
    result: list[tuple[socket.socket, socket.socket]] = []
    error: list[BaseException] = []

    def enter_and_bind() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            error.append(exc)
            return
        try:
            linux.setns(fd, linux.CLONE_NEWNET)
        except OSError as exc:
            error.append(exc)
            return
        finally:
            os.close(fd)
        udp = tcp = None
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((LISTEN_ADDRESS, LISTEN_PORT))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((LISTEN_ADDRESS, LISTEN_PORT))
            tcp.listen(64)
            udp.setblocking(False)
            tcp.setblocking(False)
            result.append((udp, tcp))
        except OSError as exc:
            for s in (udp, tcp):
                if s is not None:
                    s.close()
            error.append(exc)

    thread = threading.Thread(target=enter_and_bind, name="berth-dns-setns")
    thread.start()
    thread.join()
    if error:
        exc = error[0]
        if isinstance(exc, OSError) and exc.errno == 98:   # EADDRINUSE
            raise Conflict(f"cannot serve DNS in {netns}: {LISTEN_ADDRESS}:{LISTEN_PORT} is taken there") from exc
        raise RuntimeFailure(f"cannot serve DNS in network namespace {netns}: {exc}") from exc
    return result[0]


class DnsServer:
    """lookup(key, qname) -> the IPv4 addresses container `key` may see for qname ([] = not ours: forward);
    upstreams() -> the servers to forward to ('ip' or 'ip:port'), asked again for every forwarded query;
    may_forward(key) -> whether container `key` may have other names forwarded at all: False for one on internal
    networks only, which gets SERVFAIL instead (a forwarded query would carry data out: CVE-2024-29018)."""

    def __init__(self, lookup: Callable[[str, str], list[str]], upstreams: Callable[[], list[str]],
                 timeout: float = 2.0, may_forward: Callable[[str], bool] = lambda key: True) -> None:
        self._lookup = lookup
        self._upstreams = upstreams
        self._may_forward = may_forward
        self._timeout = timeout
        self._lock = threading.Lock()           # attach/detach/close, one at a time
        self._attached: dict[str, _Attachment] = {}
        self._selector = selectors.DefaultSelector()
        self._ops: list[Callable[[], None]] = []
        self._ops_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # answering our names never waits behind forwarding, which can take the whole timeout
        self._workers = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="berth-dns")
        self._forwarders = ThreadPoolExecutor(max_workers=_FORWARDERS, thread_name_prefix="berth-dns-forward")
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._tcp_slots = threading.BoundedSemaphore(_MAX_TCP)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="berth-dns", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------ public

    def attach(self, key: str, netns: Path) -> None:
        """Serve 127.0.0.11:53 in the namespace at netns for container key. Attaching a key again is a no-op;
        with a different namespace, the old one is let go first."""
        with self._lock:
            if self._closed:
                raise Unavailable("the DNS server is closed")
            current = self._attached.get(key)
            if current is not None and current.netns == netns:
                return
            udp, tcp = _bind_in_netns(netns)      # first: a failure leaves the current attachment as it was
            if current is not None:
                self._detach_locked(current)
            attachment = _Attachment(key, netns, udp, tcp)
            self._attached[key] = attachment

            def register() -> None:
                self._selector.register(udp, selectors.EVENT_READ, attachment)
                self._selector.register(tcp, selectors.EVENT_READ, attachment)
            self._call(register)

    def detach(self, key: str) -> None:
        """Stop serving key's namespace: its sockets are closed when this returns. Unknown keys are ignored."""
        with self._lock:
            attachment = self._attached.get(key)
            if attachment is not None:
                self._detach_locked(attachment)

    def attached(self) -> list[str]:
        with self._lock:
            return sorted(self._attached)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            for attachment in list(self._attached.values()):
                self._detach_locked(attachment)
            self._closed = True
            self._call(lambda: None)            # the loop sees _closed after this
        self._thread.join(timeout=5)
        self._workers.shutdown(wait=True, cancel_futures=True)
        self._forwarders.shutdown(wait=True, cancel_futures=True)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ loop

    def _detach_locked(self, attachment: _Attachment) -> None:
        del self._attached[attachment.key]

        def unregister() -> None:
            for s in (attachment.udp, attachment.tcp):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(s)
        self._call(unregister)
        with attachment.lock:
            attachment.closed = True
            attachment.udp.close()
            attachment.tcp.close()
            for client in attachment.clients:   # wakes their threads, which close them
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)

    def _call(self, op: Callable[[], None]) -> None:
        """Run op on the loop's thread and wait for it (the selector is only touched there)."""
        done = threading.Event()
        failure: list[BaseException] = []

        def wrapped() -> None:
            try:
                op()
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                failure.append(exc)
            finally:
                done.set()
        with self._ops_lock:
            self._ops.append(wrapped)
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\0")
        if not done.wait(timeout=10):
            raise RuntimeFailure("the DNS server's thread does not answer")
        if failure:
            raise failure[0]

    def _serve(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        while self._wake_r.recv(512):
                            pass
                    continue
                attachment: _Attachment = key.data
                try:
                    if key.fileobj is attachment.udp:
                        self._read_datagrams(attachment)
                    else:
                        self._accept(attachment)
                except Exception:  # noqa: BLE001 - the loop serves every container: it must not die
                    log.exception("DNS: serving %s failed", attachment.key)
            with self._ops_lock:
                ops, self._ops = self._ops, []
            for op in ops:
                op()
            if self._closed:
                return

    def _read_datagrams(self, attachment: _Attachment) -> None:
        for _ in range(64):             # then give the other sockets a turn
            try:
                data, peer = attachment.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            with self._pending_lock:
                if self._pending >= _MAX_PENDING:
                    continue
                self._pending += 1
            self._workers.submit(self._answer_datagram, attachment, data, peer)

    def _accept(self, attachment: _Attachment) -> None:
        try:
            client, _ = attachment.tcp.accept()
        except OSError:
            return
        if not self._tcp_slots.acquire(blocking=False):
            client.close()
            return
        client.setblocking(True)
        with attachment.lock:
            if attachment.closed:
                client.close()
                self._tcp_slots.release()
                return
            attachment.clients.add(client)
        threading.Thread(target=self._serve_tcp, args=(attachment, client), name="berth-dns-tcp",
                         daemon=True).start()

    # ------------------------------------------------------------------------------------------ answering

    def _answer_datagram(self, attachment: _Attachment, data: bytes, peer: tuple[str, int]) -> None:
        handed_over = False
        try:
            response, to_forward = self._decide(attachment.key, data, tcp=False)
            if to_forward is not None:
                self._forwarders.submit(self._forward_datagram, attachment, to_forward, data, peer)
                handed_over = True
            elif response is not None:
                with contextlib.suppress(OSError):
                    attachment.udp.sendto(response, peer)
        except RuntimeError:            # the pool is shut down: the server is closing
            pass
        except Exception:  # noqa: BLE001 - a worker must survive any query
            log.exception("DNS: answering a query for %s failed", attachment.key)
        finally:
            if not handed_over:
                with self._pending_lock:
                    self._pending -= 1

    def _forward_datagram(self, attachment: _Attachment, query: Message, data: bytes, peer: tuple[str, int]) -> None:
        try:
            response = self._forward_or_fail(query, data, tcp=False)
            with contextlib.suppress(OSError):
                attachment.udp.sendto(response, peer)
        except Exception:  # noqa: BLE001 - a worker must survive any query
            log.exception("DNS: forwarding a query for %s failed", attachment.key)
        finally:
            with self._pending_lock:
                self._pending -= 1

    def _serve_tcp(self, attachment: _Attachment, client: socket.socket) -> None:
        try:
            while True:
                client.settimeout(_TCP_IDLE)
                prefix = _recv_exactly(client, 2)
                if prefix is None:
                    return
                (size,) = struct.unpack("!H", prefix)
                data = _recv_exactly(client, size)
                if data is None:
                    return
                response = self.respond(attachment.key, data, tcp=True)
                if response is None:
                    return                      # nothing to say to garbage: hang up
                client.sendall(struct.pack("!H", len(response)) + response)
        except OSError:
            return
        except Exception:  # noqa: BLE001 - a client must never take the server down
            log.exception("DNS: serving a TCP client of %s failed", attachment.key)
        finally:
            with attachment.lock:
                attachment.clients.discard(client)
            client.close()
            self._tcp_slots.release()

    def respond(self, key: str, data: bytes, *, tcp: bool) -> bytes | None:
        """The response to one query from container key (None: drop it)."""
        response, to_forward = self._decide(key, data, tcp=tcp)
        return response if to_forward is None else self._forward_or_fail(to_forward, data, tcp=tcp)

    def _decide(self, key: str, data: bytes, *, tcp: bool) -> tuple[bytes | None, Message | None]:
        """(our response or None to drop the query, None) or (None, the query) when it is to be forwarded."""
        try:
            query = Message.parse(data)
        except InvalidArgument:
            return format_error(data), None
        header = query.header
        if header.is_response:
            return None, None
        if header.opcode != 0:
            return reply(query, NOTIMP), None
        if len(query.questions) != 1:
            return reply(query, FORMERR), None
        question = query.questions[0]
        limit = 65535 if tcp else (query.edns_udp_size() or _UDP_MIN)
        name = question.text_name()
        if name is not None and question.qclass == CLASS_IN and question.qtype in (TYPE_A, TYPE_AAAA):
            try:
                found = self._lookup(key, name)
            except Exception:  # noqa: BLE001 - the engine's fault, the client gets SERVFAIL
                log.exception("DNS: looking up %r for %s failed", name, key)
                return reply(query, SERVFAIL), None
            addresses = _ipv4s(found, name)
            if addresses:
                return reply(query, NOERROR, addresses if question.qtype == TYPE_A else (), limit=limit), None
        try:
            forward = self._may_forward(key)
        except Exception:  # noqa: BLE001 - when in doubt, nothing leaves
            log.exception("DNS: deciding whether %s may forward failed", key)
            forward = False
        return (None, query) if forward else (reply(query, SERVFAIL), None)

    def _forward_or_fail(self, query: Message, data: bytes, *, tcp: bool) -> bytes:
        forwarded = self._forward(data, query.header.id, tcp)
        return forwarded if forwarded is not None else reply(query, SERVFAIL)

    def _forward(self, data: bytes, query_id: int, tcp: bool) -> bytes | None:
        """The first valid answer of the upstreams to data, asked in order within the timeout (each gets an even
        share of what is left; one that refuses at once hands over to the next at once)."""
        try:
            texts = list(self._upstreams())
        except Exception:  # noqa: BLE001
            log.exception("DNS: listing the upstream resolvers failed")
            return None
        servers: list[Upstream] = []
        for text in texts:
            try:
                servers.append(Upstream.parse(text))
            except InvalidArgument as exc:
                log.warning("DNS: skipping upstream %r: %s", text, exc)
        deadline = time.monotonic() + self._timeout
        for index, server in enumerate(servers):
            share = (deadline - time.monotonic()) / (len(servers) - index)
            if share <= 0:
                break
            try:
                answer = (_ask_tcp if tcp else _ask_udp)(server, data, query_id, share)
            except OSError:
                continue
            if answer is not None:
                return answer
        return None


def _ipv4s(found: Sequence[str], name: str) -> list[ipaddress.IPv4Address]:
    addresses: list[ipaddress.IPv4Address] = []
    for text in found:
        try:
            addresses.append(ipaddress.IPv4Address(text))
        except ValueError:
            log.warning("DNS: lookup of %r gave %r, not an IPv4 address; left out", name, text)
    return addresses


def _valid_answer(answer: bytes, query_id: int) -> bool:
    if len(answer) < _HEADER.size:
        return False
    header = Header.parse(answer)
    return header.id == query_id and header.is_response


def _ask_udp(server: Upstream, data: bytes, query_id: int, timeout: float) -> bytes | None:
    deadline = time.monotonic() + timeout
    with socket.socket(server.family, socket.SOCK_DGRAM) as s:
        s.connect((server.host, server.port))   # only the server's own datagrams come through
        s.send(data)
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                answer = s.recv(65535)
            except TimeoutError:
                return None
            if _valid_answer(answer, query_id):
                return answer
    return None


def _ask_tcp(server: Upstream, data: bytes, query_id: int, timeout: float) -> bytes | None:
    deadline = time.monotonic() + timeout
    with socket.create_connection((server.host, server.port), timeout=timeout) as s:
        s.sendall(struct.pack("!H", len(data)) + data)
        s.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            prefix = _recv_exactly(s, 2)
            answer = _recv_exactly(s, struct.unpack("!H", prefix)[0]) if prefix is not None else None
        except TimeoutError:
            return None
    return answer if answer is not None and _valid_answer(answer, query_id) else None


def _recv_exactly(s: socket.socket, size: int) -> bytes | None:
    """size bytes, or None when the peer closes first."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = s.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)
