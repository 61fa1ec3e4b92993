"""The pure parts of the container CLI, without a daemon: flag value parsing, port and volume specs, ps cells,
detach keys, stream framing, timestamps, IPAM consolidation."""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.cli.containers import displayable_ports, go_quote, timestamp_arg
from berth.cli.context import UsageError
from berth.cli.createopts import (
    CreateFlagError,
    duration_ns,
    nano_cpus,
    normalize_caps,
    parse_mount,
    parse_port_specs,
    parse_restart,
    parse_volumes,
    ram_bytes,
    ulimit,
)
from berth.cli.networks import ipam_config
from berth.cli.stats import Sample, binary_size
from berth.cli.tty import DEFAULT_DETACH_KEYS, EscapeProxy, parse_detach_keys
from berth.client.hijack import FrameDecoder
from berth.errors import InvalidArgument


def test_sizes_durations_and_cpus_parse_as_go_units_and_time_do() -> None:
    assert ram_bytes("64m") == 64 << 20 and ram_bytes("1g") == 1 << 30 and ram_bytes("512") == 512
    assert ram_bytes("1.5k") == 1536 and ram_bytes("2GB") == 2 << 30
    for bad, why in (("12x", "invalid suffix: 'x'"), ("abc", "invalid size: 'abc'")):
        with pytest.raises(argparse.ArgumentTypeError) as info:
            ram_bytes(bad)
        assert str(info.value) == f"{bad}\0{why}"
    assert duration_ns("1m30s") == 90 * 10**9 and duration_ns("500ms") == 5 * 10**8 and duration_ns("-1s") == -10**9
    assert duration_ns("0") == 0 and duration_ns("1.5h") == 5400 * 10**9
    with pytest.raises(argparse.ArgumentTypeError):
        duration_ns("10")
    assert nano_cpus("1.5") == 1_500_000_000 and nano_cpus(".5") == 500_000_000 and nano_cpus("-1") == -10**9
    with pytest.raises(argparse.ArgumentTypeError):
        nano_cpus("0.0000000001")
    with pytest.raises(argparse.ArgumentTypeError):
        nano_cpus("abc")


def test_ulimits_restart_policies_and_capabilities() -> None:
    assert ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert ulimit("nproc=10") == {"Name": "nproc", "Soft": 10, "Hard": 10}
    for bad in ("nofile", "bogus=1", "nofile=x", "nofile=10:5"):
        with pytest.raises(argparse.ArgumentTypeError):
            ulimit(bad)
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(CreateFlagError, match="no policy provided before colon"):
        parse_restart(":3")
    with pytest.raises(CreateFlagError, match="must be an integer"):
        parse_restart("on-failure:x")
    assert normalize_caps(["net_admin", "CAP_CHOWN", "all", "net_admin"]) == ["CAP_NET_ADMIN", "CAP_CHOWN", "ALL"]


def test_port_specs_follow_go_connections_nat() -> None:
    exposed, bindings = parse_port_specs(["8080:80", "127.0.0.1:9000-9001:9000-9001/udp", "53", "[::1]:7:7"])
    assert exposed == {"80/tcp": {}, "9000/udp": {}, "9001/udp": {}, "53/tcp": {}, "7/tcp": {}}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert bindings["9001/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "9001"}]
    assert bindings["53/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert bindings["7/tcp"] == [{"HostIp": "::1", "HostPort": "7"}]
    _, ranged = parse_port_specs(["5000-5010:80"])   # one container port, a host range to pick from
    assert ranged["80/tcp"] == [{"HostIp": "", "HostPort": "5000-5010"}]
    for bad, message in (("70000:80", "invalid hostPort: 70000"), ("a:b", "invalid containerPort: b"),
                         ("80/xyz", "invalid proto: xyz"), ("1-3:4-5", "invalid ranges")):
        with pytest.raises(CreateFlagError, match=message):
            parse_port_specs([bad])


def test_volume_specs_and_mounts() -> None:
    binds, volumes = parse_volumes(["/srv:/data:ro", "named:/n", "/anon", "./rel:/r"])
    assert binds[:2] == ["/srv:/data:ro", "named:/n"] and binds[2].endswith("/rel:/r") and binds[2].startswith("/")
    assert volumes == {"/anon": {}}
    for bad, message in (("a:b:c:d", "too many colons"), ("a::b", "empty section"), ("", "invalid empty")):
        with pytest.raises(CreateFlagError, match=message):
            parse_volumes([bad])
    assert parse_mount("type=bind,src=/a,dst=/b,ro,bind-propagation=rslave") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True, "BindOptions": {"Propagation": "rslave"}}
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777")["TmpfsOptions"] == {
        "SizeBytes": 1 << 20, "Mode": 0o1777}
    assert parse_mount("source=v,target=/v,volume-nocopy")["VolumeOptions"] == {"NoCopy": True}
    for bad, message in (("source=/x", "target is required"), ("type=bind,target=/x,volume-nocopy",
                                                                "cannot mix 'volume-"),
                         ("target=/x,junk", "must be a key=value pair"), ("target=/x,ro=maybe", "invalid value")):
        with pytest.raises(CreateFlagError, match=message):
            parse_mount(bad)


def test_ps_cells_read_like_docker() -> None:
    ports = [{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 81, "Type": "tcp"}, {"PrivatePort": 82,
                                                                                        "Type": "tcp"},
             {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"}]
    # groups in the order their first (lowest) port appears, host mappings last
    assert displayable_ports(ports) == "0.0.0.0:53->53/udp, 80-82/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert displayable_ports([]) == ""
    assert go_quote('sh -c "x"\t\x01') == '"sh -c \\"x\\"\\t\\x01"'


def test_timestamps_for_since_and_until() -> None:
    assert timestamp_arg("10m", now=1000.0) == "400.000000000"
    assert timestamp_arg("1700000000") == "1700000000"
    assert timestamp_arg("2026-01-02T03:04:05Z") == "1767323045.000000000"
    with pytest.raises(InvalidArgument):
        timestamp_arg("yesterday")


def test_detach_keys_parse_and_are_held_back_until_broken() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == DEFAULT_DETACH_KEYS
    assert parse_detach_keys("a,ctrl-@,ctrl-[") == b"a\x00\x1b"
    with pytest.raises(InvalidArgument):
        parse_detach_keys("ctrl-1")
    proxy = EscapeProxy(DEFAULT_DETACH_KEYS)
    assert proxy.feed(b"ab\x10") == (b"ab", False)   # a possible start: held
    assert proxy.feed(b"x") == (b"\x10x", False)     # broken: sent on
    assert proxy.feed(b"\x10\x10") == (b"\x10", False)
    assert proxy.feed(b"\x11rest") == (b"", True)


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=8), st.integers(1, 50))
def test_frames_come_out_whole_however_the_stream_is_cut(frames: list[tuple[int, bytes]], cut: int) -> None:
    wire = b"".join(struct.pack(">BxxxI", s, len(p)) + p for s, p in frames)
    decoder = FrameDecoder()
    got = [piece for i in range(0, len(wire), cut) for piece in decoder.feed(wire[i:i + cut])]
    assert got == frames and decoder.pending == 0


def test_ipam_flags_are_consolidated_per_subnet() -> None:
    assert ipam_config(["10.1.0.0/16"], ["10.1.2.0/24"], ["10.1.0.1"], {"host": "10.1.0.5"}) == [
        {"Subnet": "10.1.0.0/16", "IPRange": "10.1.2.0/24", "Gateway": "10.1.0.1",
         "AuxiliaryAddresses": {"host": "10.1.0.5"}}]
    for args, message in (((["10.1.0.0/16"], ["10.2.0.0/24"], [], {}), "no matching subnet for range"),
                          (([], [], ["10.1.0.1"], {}), "corresponding subnet"),
                          ((["10.1.0.0/16"], [], ["10.9.0.1"], {}), "no matching subnet for gateway"),
                          ((["bogus"], [], [], {}), "invalid CIDR")):
        with pytest.raises(UsageError, match=message):
            ipam_config(*args)


def test_stats_numbers_are_computed_as_docker_does() -> None:
    sample = Sample("c", {
        "id": "a" * 64, "name": "/web",
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000}, "system_cpu_usage": 20_000_000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000}, "system_cpu_usage": 10_000_000},
        "memory_stats": {"usage": 10 << 20, "limit": 100 << 20, "stats": {"total_inactive_file": 2 << 20}},
        "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}, {"op": "write", "value": 8}]},
        "pids_stats": {"current": 3}})
    row = sample.record(trunc=True)
    assert [row.get(k) for k in ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")] == [
        "aaaaaaaaaaaa", "web", "40.00%", "8MiB / 100MiB", "8.00%", "1.5kB / 500B", "4.1kB / 8B", "3"]
    assert binary_size(0) == "0B" and binary_size(1536) == "1.5KiB"


def test_a_refused_hijack_raises_the_daemons_error(tmp_path: Path) -> None:
    from berth.client.hijack import hijack
    from berth.client.hosts import DaemonHost
    from berth.client.transport import EngineClient, from_daemon
    from berth.errors import NotFound
    from tests.cli.tiny_daemon import Reply, TinyDaemon

    with TinyDaemon(tmp_path / "d.sock") as d:
        d.route("POST", "/v1.41/containers/gone/attach", Reply(404, b'{"message":"No such container: gone"}',
                                                               {"Content-Type": "application/json"}))
        with EngineClient(DaemonHost("unix", str(d.socket_path))) as client, pytest.raises(NotFound) as info:
            hijack(client, "/containers/gone/attach", {"stream": True, "stdout": True})
    status = from_daemon(info.value)
    assert status is not None and (status.status, status.message) == (404, "No such container: gone")
    attach = [s for s in d.seen if "attach" in s.path][0]
    assert attach.headers["Connection"] == "Upgrade" and attach.headers["Upgrade"] == "tcp"
    assert attach.path == "/v1.41/containers/gone/attach?stream=1&stdout=1"
