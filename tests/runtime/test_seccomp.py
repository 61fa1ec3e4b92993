"""Docker's default seccomp profile, as the runtime applies it: dangerous calls refused, ordinary programs work."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import pytest
from tests.runtime.conftest import Bundles, Runtime, container_id
from tests.runtime.test_differential import DOCKER_CAPS

from berth.runtime.seccomp import default_seccomp, load_default_profile, profile_to_seccomp

# --- the profile conversion (pure) ---


def _allowed(names: list[str], caps: list[str]) -> set[str]:
    spec = profile_to_seccomp(load_default_profile(), caps, goarch="amd64", kernel=(6, 1))
    out: set[str] = set()
    for rule in spec.syscalls:
        if rule.action == "SCMP_ACT_ALLOW" and not rule.args:
            out |= set(rule.names) & set(names)
    return out


def test_the_default_profile_refuses_namespace_and_mount_calls_without_sys_admin() -> None:
    names = ["unshare", "mount", "umount2", "setns", "keyctl", "io_uring_setup", "bpf", "pivot_root", "read"]
    assert _allowed(names, DOCKER_CAPS) == {"read"}
    assert {"unshare", "mount", "setns", "bpf"} <= _allowed(names, [*DOCKER_CAPS, "CAP_SYS_ADMIN"])


def test_the_default_profile_keeps_its_argument_filters() -> None:
    spec = default_seccomp(DOCKER_CAPS)
    socket_rules = [r for r in spec.syscalls if r.names == ("socket",)]
    assert sorted((a.op, a.value) for r in socket_rules for a in r.args) == [
        ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40), ("SCMP_CMP_LT", 38)]
    assert spec.default_action == "SCMP_ACT_ERRNO" and spec.default_errno_ret == 1
    assert spec.architectures[0] == "SCMP_ARCH_X86_64"
    clone3 = [r for r in spec.syscalls if r.names == ("clone3",)]
    assert clone3 and clone3[0].errno_ret == 38  # ENOSYS, so libc falls back to clone


def test_arch_specific_rules_follow_the_architecture() -> None:
    amd64 = profile_to_seccomp(load_default_profile(), DOCKER_CAPS, goarch="amd64", kernel=(6, 1))
    arm64 = profile_to_seccomp(load_default_profile(), DOCKER_CAPS, goarch="arm64", kernel=(6, 1))
    assert any("arch_prctl" in r.names for r in amd64.syscalls)
    assert not any("arch_prctl" in r.names for r in arm64.syscalls)
    old = profile_to_seccomp(load_default_profile(), DOCKER_CAPS, goarch="amd64", kernel=(4, 4))
    assert not any("ptrace" in r.names and not r.args for r in old.syscalls)


# --- in a container ---


def _docker_seccomp(cfg: dict[str, Any]) -> None:
    caps = list(DOCKER_CAPS)
    cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    cfg["process"]["noNewPrivileges"] = False
    cfg["linux"]["seccomp"] = default_seccomp(caps).to_json()


@pytest.mark.root
@pytest.mark.parametrize("call, expected", [
    ("unshare", "EPERM"), ("unshare-user", "EPERM"), ("mount", "EPERM"), ("keyctl", "EPERM"),
    ("io_uring_setup", "EPERM"), ("vsock", "EPERM"), ("alg", "EPERM"), ("inet", "ok"), ("getpid", "ok"),
])
def test_docker_s_profile_inside_the_container(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                               call: str, expected: str) -> None:
    if bundles.probe is None:
        pytest.skip("no C compiler to build the probe (apt install gcc libc6-dev)")

    def configure(cfg: dict[str, Any]) -> None:
        _docker_seccomp(cfg)
        cfg["process"]["args"] = ["probe", call]

    out = berth("run", "-b", str(bundles.make([], mutate=configure)), container_id(request))
    assert out.stdout.strip() == expected, out.stderr


@pytest.mark.root
def test_without_the_profile_the_probe_calls_succeed_with_sys_admin(berth: Runtime, bundles: Bundles,
                                                                     request: pytest.FixtureRequest) -> None:
    """The control: the refusals above come from the filter, not from the probe or missing capabilities."""
    if bundles.probe is None:
        pytest.skip("no C compiler to build the probe")

    def configure(cfg: dict[str, Any]) -> None:
        caps = [*DOCKER_CAPS, "CAP_SYS_ADMIN"]
        cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        cfg["process"]["args"] = ["sh", "-c", "probe keyctl; probe unshare; probe vsock"]

    out = berth("run", "-b", str(bundles.make([], mutate=configure)), container_id(request))
    assert out.stdout.split()[:2] == ["ok", "ok"]


@pytest.mark.root
def test_ordinary_programs_work_under_the_profile(berth: Runtime, bundles: Bundles,
                                                  request: pytest.FixtureRequest) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        def configure(cfg: dict[str, Any]) -> None:
            _docker_seccomp(cfg)
            # share the host's network namespace: the server listens on the host's loopback
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
            cfg["process"]["args"] = ["sh", "-c", f"""
                set -e
                echo one two three | awk '{{print $2}}'
                ls / | sort | head -1
                mkdir -p /tmp/x && echo data > /tmp/x/f && cat /tmp/x/f && rm -r /tmp/x
                sleep 0.1 &
                wait
                wget -q -O - http://127.0.0.1:{port}/
                tar -cf - /etc/passwd 2>/dev/null | tar -tf -
            """]

        out = berth("run", "-b", str(bundles.make([], mutate=configure)), container_id(request))
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n") == ["two", "bin", "data", "hello from the host", "etc/passwd", ""]
    finally:
        server.shutdown()
        server.server_close()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"hello from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

