"""The create request `berth run`/`create` builds from docker's flags is the one the real docker CLI builds: both
CLIs talk to a tiny recording daemon that refuses the create, and the JSON bodies are compared with zero values
dropped (docker spells out ~40 zero fields; an absent field means the same to a daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.tiny_daemon import Reply, TinyDaemon
from tests.peers import DOCKER_CLI

API = "1.44"


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[TinyDaemon]:
    if not os.access(DOCKER_CLI, os.X_OK):
        pytest.skip("the docker CLI is not installed")
    with TinyDaemon(tmp_path / "d.sock", api_version=API) as d:
        d.route("POST", f"/v{API}/containers/create", Reply(400, b'{"message":"recorded"}',
                                                                 {"Content-Type": "application/json"}))
        yield d


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: sorted(v) if k == "Binds" and v else _pruned(v) for k, v in value.items()}  # a Go map for docker
        return {k: v for k, v in out.items() if v not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _create_body(d: TinyDaemon, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, Any, str]:
    d.seen.clear()
    proc = subprocess.run(argv, capture_output=True, env=env, cwd=cwd, timeout=60)
    creates = [s for s in d.seen if "/containers/create" in s.path]
    body = _pruned(json.loads(creates[-1].body)) if creates else None
    query = creates[-1].path.partition("?")[2] if creates else ""
    return proc.returncode, body, query


CASES = [
    ["busybox"],
    ["--rm", "-e", "A=1", "-e", "FROM_ENV", "-w", "/tmp", "-u", "nobody:nogroup", "--entrypoint", "sh",
     "--name", "n1", "-l", "a=b", "-l", "solo", "--hostname", "h", "--domainname", "example.org", "busybox",
     "-c", "echo hi"],
    ["-t", "--stop-signal", "SIGUSR1", "--stop-timeout", "7", "--init", "busybox", "sh"],
    ["-d", "-p", "8080:80", "-p", "127.0.0.1:9000-9001:9000-9001/udp", "-p", "53", "-P", "--expose", "7000-7001",
     "busybox"],
    ["-v", "/srv:/data:ro", "-v", "named:/named", "-v", "/anon", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m",
     "--mount", "type=bind,source=/srv,target=/b,readonly,bind-propagation=rslave", "--tmpfs", "/run:size=64k",
     "--volumes-from", "other:ro", "busybox"],
    ["--restart", "on-failure:3", "-m", "64m", "--memory-swap", "-1", "--cpus", "1.5", "--cpu-shares", "512",
     "--cpuset-cpus", "0", "--pids-limit", "50", "--ulimit", "nofile=1024:2048", "--read-only", "--cap-add",
     "net_admin", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--privileged", "--group-add",
     "audio", "--shm-size", "128m", "--oom-score-adj", "10", "busybox"],
    ["--health-cmd", "true", "--health-interval", "1s", "--health-timeout", "500ms", "--health-retries", "3",
     "--health-start-period", "1m30s", "busybox"],
    ["--no-healthcheck", "--dns", "1.1.1.1", "--dns-search", "example.org", "--dns-option", "ndots:2",
     "--add-host", "db:10.0.0.5", "--add-host", "gw=host-gateway", "busybox"],
    ["--network", "mynet", "--network-alias", "web", "--ip", "10.1.0.5", "--mac-address", "92:d0:c6:0a:29:33",
     "busybox"],
    ["--network", "none", "--log-opt", "max-size=1m", "--log-driver", "json-file", "--sysctl", "net.ipv4.ip_forward=1",
     "--platform", "linux/amd64", "busybox"],
    ["-a", "stdout", "--sig-proxy=false", "--detach-keys", "ctrl-a,a", "busybox"],
    ["-i", "busybox"],
]


@pytest.mark.interop
@pytest.mark.parametrize("flags", CASES, ids=lambda f: " ".join(f)[:40])
@pytest.mark.parametrize("command", ["run", "create"])
def test_berth_sends_the_create_body_docker_sends(recorder: TinyDaemon, tmp_path: Path, command: str,
                                                   flags: list[str]) -> None:
    if command == "create" and any(f in flags for f in ("-d", "--sig-proxy=false", "--detach-keys", "ctrl-a,a")):
        flags = [f for f in flags if f not in ("-d", "--sig-proxy=false", "--detach-keys", "ctrl-a,a")]
    env = {"PATH": os.environ.get("PATH", ""), "FROM_ENV": "from-the-environment", "HOME": str(tmp_path),
           "DOCKER_CONFIG": str(tmp_path / ".docker"), "BERTH_NO_AUTOSTART": "1"}
    host = f"unix://{recorder.socket_path}"
    d_code, d_body, d_query = _create_body(recorder, [DOCKER_CLI, "-H", host, command, *flags], env, tmp_path)
    b_code, b_body, b_query = _create_body(recorder, [sys.executable, "-m", "berth.cli.main", "-H", host, command,
                                                      *flags], {**env, "PYTHONPATH": os.pathsep.join(sys.path)},
                                           tmp_path)
    assert d_body is not None, "docker sent no create"
    # ConsoleSize is the terminal's; neither side has one here. The docker CLI's Env order varies from run to run
    # when a -e takes its value from the environment (it passes through a Go map): compare Env as a set.
    for body in (d_body, b_body):
        if isinstance(body, dict) and isinstance(body.get("Env"), list):
            body["Env"] = sorted(body["Env"])
    assert (b_code, b_query, b_body) == (d_code, d_query, d_body)


@pytest.mark.interop
@pytest.mark.parametrize("flags", [
    ["-m", "12x"], ["--cpus", "abc"], ["-p", "70000:80"], ["-p", "a:b"], ["--ulimit", "nofile"],
    ["--restart", ":3"], ["--restart", "always", "--rm"], ["--mount", "type=bogus,target=/x"],
    ["--mount", "source=/x"], ["--health-interval", "-1s", "--health-cmd", "x"], ["--no-healthcheck",
                                                                                   "--health-cmd", "x"],
    ["-a", "stdin", "-d"], ["--add-host", "nocolon"], ["--security-opt", "bogus"], ["--env-file", "/nonexistent"],
    ["--health-interval", "abc"], ["-v", "relative:/x:rw:extra"],
], ids=lambda f: " ".join(f))
def test_flag_errors_say_what_docker_says(recorder: TinyDaemon, tmp_path: Path, flags: list[str]) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / ".docker"),
           "BERTH_NO_AUTOSTART": "1"}
    host = f"unix://{recorder.socket_path}"
    d = subprocess.run([DOCKER_CLI, "-H", host, "run", *flags, "busybox"], capture_output=True, env=env, timeout=60)
    b = subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", host, "run", *flags, "busybox"],
                       capture_output=True, env={**env, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert b.returncode == d.returncode
    assert b.stderr.decode().replace("berth", "docker") == d.stderr.decode()
