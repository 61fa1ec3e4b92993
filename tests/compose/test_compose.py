"""docker-compose 1.29 (the Python one, from .venv-compose: scripts/install.sh puts it there) against berthd.

A two-service project: `web` serves a page from a named volume with an environment variable rendered into it on a
published 127.0.0.1 port, `client` reaches `web` by service name over the project's network. Driven through up,
ps, logs, exec, stop/start, a recreate after a configuration change (the volume's data is kept) and `down -v`,
which must leave nothing of the project: no container, network or volume in the API, and in the kernel no veth,
bridge, nft rule or mount more than before. A second project builds its image from a Dockerfile (`build:`), both
through docker-py's /build call and through the docker CLI that compose runs by default.

Traffic goes only to 127.0.0.1 and between the project's own containers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.berthd import PrivateBerthd

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.slow]

COMPOSE = Path(__file__).resolve().parents[2] / ".venv-compose" / "bin" / "docker-compose"

WEB_CMD = ('[ -f /www/born ] || hostname > /www/born; '
           'echo "greeting=$$GREETING born=$$(cat /www/born)" > /www/index.html; '
           'echo web is up; exec httpd -f -p 8080 -h /www')


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    if not os.access(COMPOSE, os.X_OK):
        pytest.fail(f"{COMPOSE} is missing: run scripts/install.sh (it installs docker-compose 1.29.2 there)")
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


def compose(b: PrivateBerthd, project_dir: Path, project: str, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    home = project_dir / ".home"
    home.mkdir(exist_ok=True)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **(env or {})}
    proc = subprocess.run([str(COMPOSE), "-H", b.host, "-p", project, *args], cwd=project_dir, env=full_env,
                          capture_output=True, text=True, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n"
                             f"{proc.stderr}\n--- berthd log ---\n{b.log_tail()}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(port: int, path: str = "/", timeout: float = 20.0) -> str:
    """The page on 127.0.0.1:port, once the server in the container answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return str(resp.read().decode())
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, TimeoutError):
            return True
    return False


def api_json(b: PrivateBerthd, path: str) -> list[dict[str, object]]:
    status, body = b.api("GET", path)
    assert status == 200, body
    out: list[dict[str, object]] = json.loads(body)
    return out


def labelled(b: PrivateBerthd, kind: str, project: str) -> list[str]:
    """Names of the project's containers, networks or volumes, found by compose's own label, as compose finds them."""
    query = urllib.parse.quote(json.dumps({"label": [f"com.docker.compose.project={project}"]}))
    if kind == "containers":
        return [name for c in api_json(b, f"/containers/json?all=1&filters={query}")
                for name in c["Names"]]  # type: ignore[attr-defined]
    if kind == "volumes":
        status, body = b.api("GET", f"/volumes?filters={query}")
        assert status == 200, body
        return [v["Name"] for v in json.loads(body)["Volumes"] or []]
    return [str(n["Name"]) for n in api_json(b, f"/networks?filters={query}")]


def kernel_state(b: PrivateBerthd) -> dict[str, list[str]]:
    """What berthd's containers hold in the kernel: veths on its bridges, its bridges, netns mounts and every mount
    under its dir, and the rules of its nft table."""
    bridges = [b.bridge]
    for record in (b.root / "networks").glob("*.json"):
        name = json.loads(record.read_text()).get("bridge")
        if name and name not in bridges:
            bridges.append(name)
    veths = []
    for br in bridges:
        text = subprocess.run(["ip", "-o", "link", "show", "master", br], capture_output=True, text=True).stdout
        veths += [line.split(":")[1].strip().split("@")[0] for line in text.splitlines()]
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(b.dir))]
    table = subprocess.run(["nft", "list", "table", "ip", "berth_" + b.bridge], capture_output=True,
                           text=True).stdout
    rules = [line.strip() for line in table.splitlines() if " dnat " in f" {line} " or "masquerade" in line
             or "accept" in line or "drop" in line]
    return {"bridges": sorted(br for br in bridges if Path("/sys/class/net", br).exists()), "veths": sorted(veths),
            "mounts": sorted(mounts), "rules": sorted(rules)}


def project_links(b: PrivateBerthd, network_names: list[str]) -> list[str]:
    """The bridges and host-side veths the named networks have now (to check they are gone after down)."""
    out = []
    for record in (b.root / "networks").glob("*.json"):
        raw = json.loads(record.read_text())
        if raw["name"] in network_names:
            out.append(raw["bridge"])
            out += [m["endpoint"]["veth"] for m in raw["members"].values() if m.get("endpoint")]
    return out


def wait_for(predicate: object, what: str, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def project(b: PrivateBerthd, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A project directory and a unique project name; whatever the test leaves is taken down (and then the test's
    own assertions have already failed)."""
    name = f"bp{uuid.uuid4().hex[:8]}"
    yield tmp_path, name
    if (tmp_path / "docker-compose.yml").exists():
        compose(b, tmp_path, name, "down", "-v", "-t", "0", "--rmi", "local", check=False)


def write_two_services(directory: Path, port: int, greeting: str) -> None:
    (directory / "docker-compose.yml").write_text(f"""\
version: "3.8"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", {json.dumps(WEB_CMD)}]
    environment:
      GREETING: {greeting}
    volumes:
      - www:/www
    ports:
      - "127.0.0.1:{port}:8080"
  client:
    image: busybox:latest
    command: ["sleep", "3600"]
    depends_on: [web]
volumes:
  www:
""")


def test_a_two_service_project_comes_up_works_and_goes_down_leaving_nothing(
        b: PrivateBerthd, project: tuple[Path, str]) -> None:
    directory, name = project
    port = free_port()
    write_two_services(directory, port, "hello-compose")
    before = kernel_state(b)

    up = compose(b, directory, name, "up", "-d")
    assert f'Creating network "{name}_default"' in up.stderr and f'Creating volume "{name}_www"' in up.stderr
    assert sorted(labelled(b, "containers", name)) == [f"/{name}_client_1", f"/{name}_web_1"]
    assert labelled(b, "networks", name) == [f"{name}_default"]
    assert labelled(b, "volumes", name) == [f"{name}_www"]
    links = project_links(b, [f"{name}_default"])
    assert len(links) == 3, links                     # the project's bridge and a veth per container

    # the env var in the page, served from the named volume, on the published port of the host's 127.0.0.1
    page = fetch(port)
    assert page.startswith("greeting=hello-compose born=")
    born = page.split("born=")[1].strip()
    ps = compose(b, directory, name, "ps").stdout
    assert f"127.0.0.1:{port}->8080/tcp" in ps and ps.count(" Up ") == 2, ps

    # the client reaches the web service by its service name (and by its container name) over the project network
    for host in ("web", f"{name}_web_1"):
        got = compose(b, directory, name, "exec", "-T", "client", "wget", "-qO-", f"http://{host}:8080/").stdout
        assert got == page
    failed = compose(b, directory, name, "exec", "-T", "client", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    assert "web is up" in compose(b, directory, name, "logs", "--no-color", "web").stdout

    compose(b, directory, name, "stop", "-t", "1")
    ps = compose(b, directory, name, "ps").stdout
    assert ps.count(" Exit ") == 2 and " Up " not in ps, ps
    assert refused(port)
    compose(b, directory, name, "start")
    assert fetch(port) == page

    # a changed environment recreates web; the named volume (and what the first web wrote in it) stays
    write_two_services(directory, port, "hello-again")
    again = compose(b, directory, name, "up", "-d", "-t", "1")
    assert f"Recreating {name}_web_1" in again.stderr and f"{name}_client_1 is up-to-date" in again.stderr
    assert fetch(port) == f"greeting=hello-again born={born}\n"
    got = compose(b, directory, name, "exec", "-T", "client", "wget", "-qO-", "http://web:8080/").stdout
    assert got == f"greeting=hello-again born={born}\n"
    links = project_links(b, [f"{name}_default"])

    down = compose(b, directory, name, "down", "-v", "-t", "1")
    assert f"Removing network {name}_default" in down.stderr and f"Removing volume {name}_www" in down.stderr
    assert labelled(b, "containers", name) == [] and labelled(b, "networks", name) == []
    assert labelled(b, "volumes", name) == []
    assert not (b.root / "volumes" / f"{name}_www").exists()
    wait_for(lambda: kernel_state(b) == before, "the kernel state of before the project")
    assert [link for link in links if Path("/sys/class/net", link).exists()] == []
    assert refused(port)


def write_build_project(directory: Path, port: int, image: str) -> None:
    app = directory / "app"
    app.mkdir(exist_ok=True)
    (app / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        "ARG WHO=nobody\n"
        'RUN mkdir -p /www && echo "built for $WHO" > /www/index.html\n'
        "COPY extra.txt /www/extra.txt\n"
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n')
    (app / "extra.txt").write_text("copied from the context\n")
    (app / ".dockerignore").write_text("secret.txt\n")
    (app / "secret.txt").write_text("must not reach the build\n")
    (directory / "docker-compose.yml").write_text(f"""\
version: "3.8"
services:
  site:
    build:
      context: ./app
      args:
        WHO: compose
    image: {image}
    ports:
      - "127.0.0.1:{port}:8080"
""")


@pytest.mark.parametrize("builder", ["docker-py", "docker-cli"])
def test_a_project_with_build_builds_its_image_runs_it_and_removes_it(
        b: PrivateBerthd, project: tuple[Path, str], builder: str) -> None:
    directory, name = project
    port = free_port()
    image = f"{name}/site:1"
    write_build_project(directory, port, image)
    # compose 1.29 runs `docker build` by default (COMPOSE_DOCKER_CLI_BUILD=1), which finds the daemon through
    # DOCKER_HOST, not -H; =0 makes it call POST /build itself through docker-py
    env = {"COMPOSE_DOCKER_CLI_BUILD": "0"} if builder == "docker-py" else {"DOCKER_HOST": b.host}
    before = kernel_state(b)
    images_before = sorted(b.docker("images", "-aq", "--no-trunc").stdout.decode().split())

    built = compose(b, directory, name, "build", env=env)
    assert "Step 3/5 : RUN" in built.stdout + built.stderr
    assert f"Successfully tagged {image}" in built.stdout + built.stderr
    # the build's intermediate images show only with -a, as dockerd's do
    listed = b.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert "<none>:<none>" not in listed and f"{image}" in listed
    assert len(b.docker("images", "-aq").stdout.split()) == len(images_before) + 4
    inspect = json.loads(b.docker("image", "inspect", image).stdout)[0]
    assert inspect["Config"]["Cmd"] == ["httpd", "-f", "-p", "8080", "-h", "/www"]

    compose(b, directory, name, "up", "-d", env=env)
    assert fetch(port) == "built for compose\n"
    assert fetch(port, "/extra.txt") == "copied from the context\n"
    listing = compose(b, directory, name, "exec", "-T", "site", "ls", "/www").stdout.split()
    assert listing == ["extra.txt", "index.html"]

    # a rebuild of the unchanged context comes from the cache
    rebuilt = compose(b, directory, name, "build", env=env)
    assert (rebuilt.stdout + rebuilt.stderr).count("Using cache") == 4     # every step after FROM

    compose(b, directory, name, "down", "-v", "-t", "1", "--rmi", "all", env=env)
    assert b.docker("image", "inspect", image, check=False).returncode != 0
    # and its removal takes them along (the untagged parents no other image or container holds)
    assert sorted(b.docker("images", "-aq", "--no-trunc").stdout.decode().split()) == images_before
    assert labelled(b, "containers", name) == [] and labelled(b, "networks", name) == []
    wait_for(lambda: kernel_state(b) == before, "the kernel state of before the project")
    assert refused(port)


def test_links_hostname_domainname_ulimits_sysctls_and_a_shared_network_namespace(
        b: PrivateBerthd, project: tuple[Path, str]) -> None:
    """What compose 1.29 sends for `links:`, `hostname:`/`domainname:`, `ulimits:`, `sysctls:`,
    `network_mode: service:`, `volumes_from:` and `depends_on: condition: service_healthy` takes effect."""
    directory, name = project
    (directory / "docker-compose.yml").write_text("""\
version: "2.4"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www; echo served > /www/index.html; exec httpd -f -p 8080 -h /www"]
    hostname: webhost
    domainname: example.test
    volumes: ["/www"]
    mem_limit: 64m
    ulimits:
      nofile: {soft: 1024, hard: 2048}
    sysctls:
      net.ipv4.tcp_keepalive_time: "600"
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/"]
      interval: 1s
  side:
    image: busybox:latest
    network_mode: "service:web"
    volumes_from: [web]
    command: ["sleep", "300"]
    depends_on:
      web: {condition: service_healthy}
  tool:
    image: busybox:latest
    command: ["sleep", "300"]
    links: ["web:weblink"]
""")
    compose(b, directory, name, "up", "-d")

    def sh(service: str, script: str) -> str:
        return compose(b, directory, name, "exec", "-T", service, "sh", "-c", script).stdout

    # links: only the linking container resolves the link's alias; the hostname is a name on the network
    assert sh("tool", "wget -qO- http://weblink:8080/") == "served\n"
    assert sh("tool", "wget -qO- http://webhost:8080/") == "served\n"
    assert compose(b, directory, name, "exec", "-T", "web", "nslookup", "weblink", "127.0.0.11",
                   check=False).returncode != 0
    tool = json.loads(b.docker("inspect", f"{name}_tool_1").stdout)[0]
    links = tool["NetworkSettings"]["Networks"][f"{name}_default"]["Links"]
    assert f"{name}_web_1:weblink" in links
    web = json.loads(b.docker("inspect", f"{name}_web_1").stdout)[0]
    assert web["HostConfig"]["Sysctls"] == {"net.ipv4.tcp_keepalive_time": "600"}
    assert (web["HostConfig"]["Memory"], web["HostConfig"]["MemorySwap"]) == (64 << 20, 128 << 20)
    aliases = web["NetworkSettings"]["Networks"][f"{name}_default"]["Aliases"]
    assert {"web", "webhost", web["Id"][:12]} <= set(aliases)

    # UTS names, sysctls and ulimits, for the container's process and for an exec alike
    assert sh("web", "hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/net/ipv4/tcp_keepalive_time; "
                     "ulimit -n; ulimit -Hn; grep 'open files' /proc/1/limits | tr -s ' '").splitlines() == [
        "webhost", "example.test", "600", "1024", "2048", "Max open files 1024 2048 files "]

    assert sh("web", "hostname -f") == "webhost.example.test\n"

    # side shares web's network namespace (web's server on its 127.0.0.1), its names and its volumes
    assert sh("side", "wget -qO- http://127.0.0.1:8080/; cat /www/index.html") == "served\nserved\n"
    assert sh("side", "hostname; cat /proc/sys/kernel/domainname; hostname -f").splitlines() == [
        "webhost", "example.test", "webhost.example.test"]
    compose(b, directory, name, "down", "-v", "-t", "0")
    assert labelled(b, "containers", name) == []
    assert b.docker("volume", "ls", "-q").stdout == b""       # web's anonymous volume went with it


def test_a_version_1_file_links_containers_on_the_default_bridge(b: PrivateBerthd, project: tuple[Path, str]) -> None:
    """A compose file without `version:` speaks API 1.21 and puts its services on the default bridge, where `links:`
    are legacy links: HostConfig.Links, written into /etc/hosts as dockerd writes them."""
    directory, name = project
    port = free_port()
    (directory / "docker-compose.yml").write_text(f"""\
web:
  image: busybox:latest
  command: ["sh", "-c", "mkdir -p /www; echo version one > /www/index.html; exec httpd -f -p 8080 -h /www"]
  ports: ["127.0.0.1:{port}:8080"]
client:
  image: busybox:latest
  command: ["sleep", "300"]
  links: ["web"]
""")
    before = kernel_state(b)
    compose(b, directory, name, "up", "-d")
    assert fetch(port) == "version one\n"
    web = json.loads(b.docker("inspect", f"{name}_web_1").stdout)[0]
    client = json.loads(b.docker("inspect", f"{name}_client_1").stdout)[0]
    assert client["HostConfig"]["NetworkMode"] == "default"
    assert f"/{name}_web_1:/{name}_client_1/web" in client["HostConfig"]["Links"]
    ip = web["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    hosts = compose(b, directory, name, "exec", "-T", "client", "cat", "/etc/hosts").stdout
    assert f"{ip}\tweb {web['Config']['Hostname']} {name}_web_1\n" in hosts
    got = compose(b, directory, name, "exec", "-T", "client", "wget", "-qO-", "http://web:8080/").stdout
    assert got == "version one\n"
    compose(b, directory, name, "down", "-t", "0")
    wait_for(lambda: kernel_state(b) == before, "the kernel state of before the project")


def test_a_link_to_a_container_that_does_not_run_fails_the_start_and_leaves_nothing(b: PrivateBerthd) -> None:
    before = kernel_state(b)
    b.docker("create", "--name", "stopped-target", "busybox:latest", "true")
    try:
        for target in ("nosuch", "stopped-target"):
            failed = b.docker("run", "--rm", "--link", f"{target}:x", "busybox:latest", "true", check=False)
            assert failed.returncode == 125
            assert f"Cannot link to a non running container: /{target} AS /" in failed.stderr.decode()
    finally:
        b.docker("rm", "-f", "stopped-target")
    assert b.docker("ps", "-aq").stdout == b""
    wait_for(lambda: kernel_state(b) == before, "the kernel state of before")


def test_pid_and_ipc_of_another_service_and_of_the_host(b: PrivateBerthd, project: tuple[Path, str]) -> None:
    directory, name = project
    (directory / "docker-compose.yml").write_text("""\
version: "2.4"
services:
  main:
    image: busybox:latest
    command: ["sleep", "300"]
    ipc: shareable
  helper:
    image: busybox:latest
    command: ["sleep", "300"]
    pid: "service:main"
    ipc: "service:main"
  hostpid:
    image: busybox:latest
    command: ["sleep", "300"]
    pid: host
""")
    compose(b, directory, name, "up", "-d")

    def sh(service: str, script: str) -> str:
        return compose(b, directory, name, "exec", "-T", service, "sh", "-c", script).stdout

    main_pid = json.loads(b.docker("inspect", f"{name}_main_1").stdout)[0]["State"]["Pid"]
    namespaces = "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc"
    assert sh("helper", namespaces).splitlines() == [os.readlink(f"/proc/{main_pid}/ns/{kind}")
                                                     for kind in ("pid", "ipc")]
    assert sh("main", namespaces) != sh("hostpid", namespaces)
    assert sh("hostpid", "readlink /proc/self/ns/pid").strip() == os.readlink("/proc/self/ns/pid")
    compose(b, directory, name, "down", "-t", "0")


def test_a_project_survives_a_daemon_kill_and_compose_finds_it_up_to_date_afterwards(
        b: PrivateBerthd, project: tuple[Path, str]) -> None:
    directory, name = project
    port = free_port()
    write_two_services(directory, port, "before-the-crash")
    compose(b, directory, name, "up", "-d")
    page = fetch(port)
    b.kill()
    assert fetch(port) == page           # the published port answers while berthd is down (kernel forwarding)
    b.start()
    assert fetch(port) == page
    again = compose(b, directory, name, "up", "-d")
    assert f"{name}_web_1 is up-to-date" in again.stderr and f"{name}_client_1 is up-to-date" in again.stderr
    got = compose(b, directory, name, "exec", "-T", "client", "wget", "-qO-", "http://web:8080/").stdout
    assert got == page                   # the embedded DNS serves the project network again
    compose(b, directory, name, "down", "-v", "-t", "0")
    assert labelled(b, "containers", name) == [] and labelled(b, "volumes", name) == []
