"""The embedded DNS server: the wire codec (round trips, compression, truncation, and robustness against any bytes),
the answering rules without sockets, and, as root, the server inside real network namespaces queried by busybox
nslookup and by Python sockets, forwarding to fake upstream servers on the host's loopback (never a real resolver)."""

from __future__ import annotations

import ipaddress
import os
import socket
import statistics
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.errors import InvalidArgument
from berth.network.dns import (
    CLASS_IN,
    FORMERR,
    NOERROR,
    NOTIMP,
    SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    DnsServer,
    Header,
    Message,
    Question,
    Record,
    Upstream,
    encode_query,
    format_error,
    host_resolvers,
    read_name,
    reply,
)
from berth.util import linux

T = TypeVar("T")

NAMES = {"web": ["10.0.0.2"], "db": ["10.0.0.3", "10.0.0.4"], "bad": ["not-an-ip", "10.0.0.9"]}


def lookup(key: str, qname: str) -> list[str]:
    name = qname.lower().rstrip(".")
    if key == "other":                       # a container on another network sees only itself
        return ["10.9.9.9"] if name == "self" else []
    if name == "boom":
        raise RuntimeError("lookup exploded")
    if name == "many":
        return [f"10.1.{i // 256}.{i % 256}" for i in range(100)]
    return NAMES.get(name, [])


def no_upstreams() -> list[str]:
    return []


# ------------------------------------------------------------------------------------------------ codec

def test_a_query_round_trips_through_encode_and_parse() -> None:
    data = encode_query("Web.Example.", TYPE_AAAA, id=0x1234, edns_udp_size=4096)
    message = Message.parse(data)
    assert message.header.id == 0x1234 and not message.header.is_response and message.header.opcode == 0
    assert message.questions == (Question((b"Web", b"Example"), TYPE_AAAA, CLASS_IN),)
    assert message.questions[0].text_name() == "Web.Example"
    assert message.edns_udp_size() == 4096
    assert message.encode() == data


def test_names_follow_backward_compression_pointers_and_refuse_loops() -> None:
    # header, then "a.example" at 12, then a name "www" + pointer to 14 ("example")
    body = b"\x01a\x07example\x00" + b"\x03www\xc0\x0e"
    data = bytes(12) + body
    assert read_name(data, 12) == ((b"a", b"example"), 23)
    assert read_name(data, 23) == ((b"www", b"example"), 29)
    with pytest.raises(InvalidArgument, match="backwards"):
        read_name(bytes(12) + b"\xc0\x0c", 12)            # points at itself
    with pytest.raises(InvalidArgument, match="backwards"):
        read_name(bytes(12) + b"\x01a\xc0\x10", 12)        # points forwards
    with pytest.raises(InvalidArgument, match="past the end"):
        read_name(bytes(12) + b"\x05ab", 12)
    with pytest.raises(InvalidArgument, match="not supported"):
        read_name(bytes(12) + b"\x41a\x00", 12)
    with pytest.raises(InvalidArgument, match="255"):
        read_name(bytes(12) + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
                  + b"\x3f" + b"d" * 63 + b"\x00", 12)


def test_text_names_are_only_plain_host_name_labels() -> None:
    assert Question((b"my_app-1", b"net"), TYPE_A).text_name() == "my_app-1.net"
    assert Question((b"a.b",), TYPE_A).text_name() is None        # one label with a dot is not two
    assert Question((b"caf\xc3\xa9",), TYPE_A).text_name() is None
    assert Question((), TYPE_A).text_name() is None


def test_reply_answers_with_ttl_600_compressed_names_and_echoes_edns() -> None:
    query = Message.parse(encode_query("db", id=7, edns_udp_size=1400))
    data = reply(query, NOERROR, [ipaddress.IPv4Address("10.0.0.3"), ipaddress.IPv4Address("10.0.0.4")])
    message = Message.parse(data)
    assert message.header.id == 7 and message.header.is_response and message.header.rcode == NOERROR
    assert message.header.flags & 0x0100 and message.header.flags & 0x0080     # RD echoed, RA set
    assert message.questions == query.questions
    assert [(r.labels, r.rtype, r.rclass, r.ttl, r.rdata) for r in message.answers] == [
        ((b"db",), TYPE_A, CLASS_IN, 600, bytes([10, 0, 0, 3])), ((b"db",), TYPE_A, CLASS_IN, 600, bytes([10, 0, 0, 4]))]
    assert b"\xc0\x0c" in data
    assert message.edns_udp_size() == 1232
    assert Message.parse(reply(Message.parse(encode_query("db")), NOERROR)).additionals == ()


def test_a_reply_too_big_for_the_limit_is_truncated_with_tc() -> None:
    query = Message.parse(encode_query("many"))
    addresses = [ipaddress.IPv4Address(f"10.1.0.{i}") for i in range(100)]
    data = reply(query, NOERROR, addresses, limit=512)
    message = Message.parse(data)
    assert len(data) <= 512 and message.header.truncated
    assert 0 < len(message.answers) < 100
    full = Message.parse(reply(query, NOERROR, addresses))
    assert len(full.answers) == 100 and not full.header.truncated


def test_format_error_keeps_the_id_and_never_answers_responses_or_scraps() -> None:
    garbage = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x05ab"
    header = Header.parse(format_error(garbage) or b"")
    assert (header.id, header.is_response, header.rcode) == (0xBEEF, True, FORMERR)
    assert format_error(b"\x01\x02") is None
    assert format_error(struct.pack("!HHHHHH", 1, 0x8000, 0, 0, 0, 0)) is None


@st.composite
def messages(draw: st.DrawFn) -> Message:
    label = st.binary(min_size=1, max_size=20)
    labels = st.lists(label, max_size=5).map(tuple)
    questions = st.lists(st.builds(Question, labels, st.integers(0, 65535), st.integers(0, 65535)), max_size=3)
    records = st.lists(st.builds(Record, labels, st.integers(0, 65535), st.integers(0, 65535),
                                 st.integers(0, 2**32 - 1), st.binary(max_size=40)), max_size=3)
    header = Header(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
    return Message(header, tuple(draw(questions)), tuple(draw(records)), tuple(draw(records)),
                   tuple(draw(records)))


@given(messages())
def test_any_encoded_message_parses_back_to_itself(message: Message) -> None:
    parsed = Message.parse(message.encode())
    assert (parsed.questions, parsed.answers, parsed.authorities, parsed.additionals) == \
        (message.questions, message.answers, message.authorities, message.additionals)
    assert (parsed.header.id, parsed.header.flags) == (message.header.id, message.header.flags)


@given(st.binary(max_size=600))
@settings(max_examples=500)
def test_parsing_any_bytes_either_succeeds_or_raises_invalid_argument(data: bytes) -> None:
    try:
        Message.parse(data)
    except InvalidArgument:
        pass


@given(messages(), st.integers(0, 400), st.binary(max_size=8))
def test_parsing_a_mangled_message_either_succeeds_or_raises_invalid_argument(
        message: Message, cut: int, noise: bytes) -> None:
    data = message.encode()
    for mangled in (data[:cut], data[:cut] + noise + data[cut + len(noise):]):
        try:
            Message.parse(mangled)
        except InvalidArgument:
            pass


def test_host_resolvers_skip_loopback_comments_and_junk(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n"
                    "nameserver   2001:db8::53  \nnameserver ::1\nnameserver not-an-ip\n; nameserver 192.0.2.9\n"
                    "nameserver\noptions ndots:2\nnameserver 198.51.100.7 # trailing\n")
    assert host_resolvers(conf) == ["192.0.2.1", "2001:db8::53", "198.51.100.7"]
    assert host_resolvers(tmp_path / "missing") == []


def test_host_resolvers_behind_systemd_resolved_are_the_ones_it_uses(tmp_path: Path) -> None:
    stub = tmp_path / "resolv.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("nameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    assert host_resolvers(stub, upstream) == ["192.0.2.53", "192.0.2.54"]
    assert host_resolvers(stub, tmp_path / "missing") == []
    assert host_resolvers(stub, None) == []
    both = tmp_path / "both.conf"
    both.write_text("nameserver 127.0.0.53\nnameserver 198.51.100.1\n")
    assert host_resolvers(both, upstream) == ["198.51.100.1"]          # a real one is there: it is used alone
    assert host_resolvers(tmp_path / "empty", upstream) == []          # no loopback one: nothing to replace


def test_upstreams_parse_with_and_without_ports() -> None:
    assert Upstream.parse("192.0.2.1") == Upstream(socket.AF_INET, "192.0.2.1", 53)
    assert Upstream.parse("127.0.0.1:5353") == Upstream(socket.AF_INET, "127.0.0.1", 5353)
    assert Upstream.parse("2001:db8::1") == Upstream(socket.AF_INET6, "2001:db8::1", 53)
    assert Upstream.parse("[2001:db8::1]:5353") == Upstream(socket.AF_INET6, "2001:db8::1", 5353)
    for bad in ("dns.example", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:x", "[::1", "[::1]x", ""):
        with pytest.raises(InvalidArgument):
            Upstream.parse(bad)


# ------------------------------------------------------------------------------------------------ answering rules

@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(lookup, no_upstreams, timeout=0.3) as s:
        yield s


def answer(server: DnsServer, data: bytes, key: str = "c1", tcp: bool = False) -> Message:
    response = server.respond(key, data, tcp=tcp)
    assert response is not None
    return Message.parse(response)


def addresses(message: Message) -> list[str]:
    return [str(ipaddress.IPv4Address(r.rdata)) for r in message.answers if r.rtype == TYPE_A]


def test_our_names_get_a_records_and_an_empty_aaaa(server: DnsServer) -> None:
    a = answer(server, encode_query("db", id=5))
    assert (a.header.id, a.header.rcode, addresses(a)) == (5, NOERROR, ["10.0.0.3", "10.0.0.4"])
    assert {r.ttl for r in a.answers} == {600}
    aaaa = answer(server, encode_query("db", TYPE_AAAA))
    assert (aaaa.header.rcode, aaaa.answers) == (NOERROR, ())
    assert addresses(answer(server, encode_query("WEB."))) == ["10.0.0.2"]   # the lookup decides about case


def test_the_view_is_per_container(server: DnsServer) -> None:
    assert addresses(answer(server, encode_query("self"), key="other")) == ["10.9.9.9"]
    assert answer(server, encode_query("web"), key="other").header.rcode == SERVFAIL   # forwarded, no upstream


def test_names_not_ours_other_types_and_classes_are_forwarded(server: DnsServer) -> None:
    # with no upstream to forward to, forwarding fails with SERVFAIL: that shows which queries were not answered
    assert answer(server, encode_query("nobody.example")).header.rcode == SERVFAIL
    assert answer(server, encode_query("web", 15)).header.rcode == SERVFAIL                # MX
    chaos = Message(Header(1, 0x0100), (Question((b"web",), TYPE_A, 3),)).encode()
    assert answer(server, chaos).header.rcode == SERVFAIL


def test_bad_queries_get_formerr_notimp_or_nothing(server: DnsServer) -> None:
    two = Message(Header(9, 0x0100), (Question((b"web",), TYPE_A), Question((b"db",), TYPE_A))).encode()
    assert answer(server, two).header.rcode == FORMERR
    none = Message(Header(9, 0x0100)).encode()
    assert answer(server, none).header.rcode == FORMERR
    notify = Message(Header(9, 4 << 11), (Question((b"web",), TYPE_A),)).encode()
    assert answer(server, notify).header.rcode == NOTIMP
    assert server.respond("c1", reply(Message.parse(encode_query("web")), NOERROR), tcp=False) is None
    assert server.respond("c1", b"\x00", tcp=False) is None
    assert answer(server, encode_query("web")[:-2]).header.rcode == FORMERR


def test_lookup_failures_and_bad_addresses_do_not_break_the_answer(server: DnsServer) -> None:
    assert answer(server, encode_query("boom")).header.rcode == SERVFAIL
    assert addresses(answer(server, encode_query("bad"))) == ["10.0.0.9"]


def test_udp_answers_fit_the_clients_buffer_tcp_ones_need_not(server: DnsServer) -> None:
    small = answer(server, encode_query("many"))
    assert small.header.truncated and len(small.answers) < 100
    edns = answer(server, encode_query("many", edns_udp_size=4096))
    assert not edns.header.truncated and len(edns.answers) == 100
    tcp = answer(server, encode_query("many"), tcp=True)
    assert not tcp.header.truncated and len(tcp.answers) == 100


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_the_server_never_raises_on_any_bytes(data: bytes) -> None:
    with DnsServer(lookup, no_upstreams) as s:
        response = s.respond("c1", data, tcp=False)
    if response is not None:
        Header.parse(response)


# ------------------------------------------------------------------------------------------------ in namespaces

def run_in_netns(netns: Path, fn: Callable[[], T]) -> T:
    """fn called on a thread that entered the namespace (sockets it makes live there)."""
    out: list[T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                linux.setns(fd, linux.CLONE_NEWNET)
            finally:
                os.close(fd)
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            err.append(exc)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return out[0]


@pytest.fixture
def netns() -> Iterator[Callable[[], tuple[str, Path]]]:
    made: list[str] = []

    def make() -> tuple[str, Path]:
        name = f"berth-dnstest-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name, Path("/run/netns") / name
    yield make
    for name in made:
        subprocess.run(["ip", "netns", "delete", name], check=False)
    assert not any(Path("/run/netns", name).exists() for name in made)


def nslookup(name: str, qname: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", name, "busybox", "nslookup", qname, "127.0.0.11"],
                          capture_output=True, text=True, timeout=30)


def udp_query(data: bytes, timeout: float = 3.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.11", 53))
        return s.recv(65535)


def tcp_query(*queries: bytes) -> list[bytes]:
    out = []
    with socket.create_connection(("127.0.0.11", 53), timeout=3) as s:
        for data in queries:
            s.sendall(struct.pack("!H", len(data)) + data)
            size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
            out.append(s.recv(size, socket.MSG_WAITALL))
    return out


class FakeUpstream:
    """A DNS server on 127.0.0.1 (host namespace) that answers A queries with 192.0.2.7, or stays silent."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.received: list[bytes] = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(8)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.stopping = False
        self.threads = [threading.Thread(target=self._udp), threading.Thread(target=self._tcp)]
        for t in self.threads:
            t.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def response(self, data: bytes) -> bytes:
        self.received.append(data)
        query = Message.parse(data)
        ours = [ipaddress.IPv4Address("192.0.2.7")] if query.questions[0].qtype == TYPE_A else []
        return reply(query, NOERROR, ours)

    def _udp(self) -> None:
        while not self.stopping:
            try:
                data, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            response = self.response(data)
            if not self.silent:
                self.udp.sendto(response, peer)

    def _tcp(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                size = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))[0]
                response = self.response(conn.recv(size, socket.MSG_WAITALL))
                if not self.silent:
                    conn.sendall(struct.pack("!H", len(response)) + response)

    def close(self) -> None:
        self.stopping = True
        for t in self.threads:
            t.join()
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.mark.root
def test_busybox_nslookup_in_the_namespace_gets_our_names(netns: Callable[[], tuple[str, Path]]) -> None:
    name, path = netns()
    with DnsServer(lookup, no_upstreams) as server:
        server.attach("c1", path)
        server.attach("c1", path)                                   # idempotent
        proc = nslookup(name, "web")
        assert "Address: 10.0.0.2" in proc.stdout, proc.stdout + proc.stderr
        proc = nslookup(name, "db")
        assert "Address: 10.0.0.3" in proc.stdout and "Address: 10.0.0.4" in proc.stdout, proc.stdout
        # not ours and nowhere to forward: busybox reports the SERVFAIL and fails
        proc = nslookup(name, "nobody.example")
        assert proc.returncode != 0 and "SERVFAIL" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.root
def test_python_clients_in_the_namespace_over_udp_and_tcp(netns: Callable[[], tuple[str, Path]]) -> None:
    _, path = netns()
    with DnsServer(lookup, no_upstreams) as server:
        server.attach("c1", path)
        a = Message.parse(run_in_netns(path, lambda: udp_query(encode_query("web", id=77))))
        assert (a.header.id, addresses(a), a.answers[0].ttl) == (77, ["10.0.0.2"], 600)
        aaaa = Message.parse(run_in_netns(path, lambda: udp_query(encode_query("web", TYPE_AAAA))))
        assert (aaaa.header.rcode, aaaa.answers) == (NOERROR, ())
        # two queries on one TCP connection, one of them too big for UDP
        many, web = run_in_netns(path, lambda: tcp_query(encode_query("many"), encode_query("web")))
        assert len(Message.parse(many).answers) == 100 and addresses(Message.parse(web)) == ["10.0.0.2"]
        # garbage neither kills the server nor gets more than a FORMERR
        bad = run_in_netns(path, lambda: udp_query(struct.pack("!HHHHHH", 3, 0x100, 1, 0, 0, 0) + b"\x09x"))
        assert Header.parse(bad).rcode == FORMERR
        assert addresses(Message.parse(run_in_netns(path, lambda: udp_query(encode_query("web"))))) == ["10.0.0.2"]
        # the port is not reachable from the host's namespace
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(encode_query("web"), ("127.0.0.11", 53))
            with pytest.raises(OSError):
                s.recv(512)

        def latency() -> list[float]:
            times = []
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.connect(("127.0.0.11", 53))
                for i in range(300):
                    started = time.perf_counter()
                    s.send(encode_query("web", id=i))
                    while Header.parse(s.recv(512)).id != i:
                        pass
                    times.append(time.perf_counter() - started)
            return times
        times = run_in_netns(path, latency)
        median = statistics.median(times)
        print(f"DNS A answer latency: median {median * 1e6:.0f} us, p95 "
              f"{sorted(times)[int(len(times) * 0.95)] * 1e6:.0f} us")
        assert median < 0.02


@pytest.mark.root
def test_each_namespace_sees_its_own_view_and_detach_frees_the_port(netns: Callable[[], tuple[str, Path]]) -> None:
    name1, path1 = netns()
    name2, path2 = netns()
    with DnsServer(lookup, no_upstreams, timeout=0.2) as server:
        server.attach("c1", path1)
        server.attach("other", path2)
        assert server.attached() == ["c1", "other"]
        assert "Address: 10.9.9.9" in nslookup(name2, "self").stdout
        assert addresses(Message.parse(run_in_netns(path2, lambda: udp_query(encode_query("web"))))) == []
        assert "Address: 10.0.0.2" in nslookup(name1, "web").stdout
        server.detach("other")
        server.detach("never-attached")
        with pytest.raises(OSError):                    # refused or silent: nobody listens any more
            run_in_netns(path2, lambda: udp_query(encode_query("self"), timeout=0.3))
        with pytest.raises(OSError):
            run_in_netns(path2, lambda: tcp_query(encode_query("self")))
        server.attach("other", path2)                   # the port was really freed
        assert "Address: 10.9.9.9" in nslookup(name2, "self").stdout
        with pytest.raises(Exception, match="taken"):   # "other" serves path2: c1 stays where it was
            server.attach("c1", path2)
        assert "Address: 10.0.0.2" in nslookup(name1, "web").stdout
        server.detach("other")
        server.attach("c1", path2)                      # moved: the old namespace is let go
        assert "Address: 10.0.0.2" in nslookup(name2, "web").stdout
        assert "Address: 10.0.0.2" not in nslookup(name1, "web").stdout
        assert server.attached() == ["c1"]
    assert not [t for t in threading.enumerate() if t.name.startswith("berth-dns")]


@pytest.mark.root
def test_attach_to_a_missing_namespace_or_a_taken_port_fails_cleanly(netns: Callable[[], tuple[str, Path]],
                                                                      tmp_path: Path) -> None:
    _, path = netns()
    with DnsServer(lookup, no_upstreams) as server:
        with pytest.raises(Exception, match="network namespace"):
            server.attach("c1", tmp_path / "nope")
        taken = run_in_netns(path, lambda: _bound_udp())
        try:
            with pytest.raises(Exception, match="taken"):
                server.attach("c1", path)
        finally:
            taken.close()
        assert server.attached() == []
        server.attach("c1", path)
        assert server.attached() == ["c1"]


def _bound_udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.11", 53))
    return s


@pytest.mark.root
def test_other_names_are_forwarded_unchanged_and_the_answer_relayed(netns: Callable[[], tuple[str, Path]],
                                                                    upstream: FakeUpstream) -> None:
    name, path = netns()
    refused = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)      # a port nobody answers on: ICMP refused
    refused.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{refused.getsockname()[1]}"
    refused.close()
    with DnsServer(lookup, lambda: [dead, upstream.address], timeout=2.0) as server:
        server.attach("c1", path)
        proc = nslookup(name, "example.test")
        assert "Address: 192.0.2.7" in proc.stdout, proc.stdout + proc.stderr
        query = encode_query("example.test", id=4242, edns_udp_size=1232)
        started = time.monotonic()
        relayed = Message.parse(run_in_netns(path, lambda: udp_query(query)))
        assert time.monotonic() - started < 0.5                    # the refusing server did not cost a timeout
        assert upstream.received[-1] == query                      # forwarded byte for byte
        assert (relayed.header.id, addresses(relayed)) == (4242, ["192.0.2.7"])
        (over_tcp,) = run_in_netns(path, lambda: tcp_query(encode_query("example.test", id=9)))
        assert addresses(Message.parse(over_tcp)) == ["192.0.2.7"]
        mx = Message.parse(run_in_netns(path, lambda: udp_query(encode_query("web", 15, id=3))))
        assert mx.header.rcode == NOERROR and upstream.received[-1] == encode_query("web", 15, id=3)


@pytest.mark.root
def test_a_silent_upstream_means_servfail_within_the_timeout(netns: Callable[[], tuple[str, Path]]) -> None:
    _, path = netns()
    silent = FakeUpstream(silent=True)
    try:
        with DnsServer(lookup, lambda: [silent.address], timeout=1.0) as server:
            server.attach("c1", path)
            started = time.monotonic()
            answer_ = Message.parse(run_in_netns(path, lambda: udp_query(encode_query("slow.example", id=1))))
            elapsed = time.monotonic() - started
            assert answer_.header.rcode == SERVFAIL and 0.9 < elapsed < 2.5
            assert silent.received
            (tcp,) = run_in_netns(path, lambda: tcp_query(encode_query("slow.example", id=2)))
            assert Header.parse(tcp).rcode == SERVFAIL

            def local_answer_behind_many_forwards() -> tuple[float, list[int]]:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(5)
                    s.connect(("127.0.0.11", 53))
                    for i in range(30):
                        s.send(encode_query(f"slow{i}.example", id=100 + i))
                    started = time.monotonic()
                    s.send(encode_query("web", id=1))
                    while Header.parse(first := s.recv(512)).id != 1:
                        pass
                    elapsed = time.monotonic() - started
                    rcodes = [Header.parse(s.recv(512)).rcode for _ in range(30)]
                    assert addresses(Message.parse(first)) == ["10.0.0.2"]
                    return elapsed, rcodes
            elapsed, rcodes = run_in_netns(path, local_answer_behind_many_forwards)
            assert elapsed < 0.5 and rcodes == [SERVFAIL] * 30    # behind the forwards it would take >= 1 s
    finally:
        silent.close()

