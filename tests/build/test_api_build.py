"""POST /build through berthd, driven by the real docker CLI (DOCKER_BUILDKIT=0), docker-py and the raw API: the
progress stream, tags, quiet mode, build args, BuildKit-only features berth adds (heredocs, --chmod), ADD from a
loopback URL, and what a failing or bad build leaves behind (nothing)."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import _mounts_under, layered_image_archive

pytestmark = pytest.mark.root
CLASSIC = {"DOCKER_BUILDKIT": "0"}


@pytest.fixture(scope="module")
def b() -> Iterator[PrivateBerthd]:
    with PrivateBerthd() as daemon:
        status, body = daemon.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200 and b'"aux"' in body, body
        yield daemon


def context(tmp: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp


def build(b: PrivateBerthd, ctx: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    proc = b.docker("build", *args, str(ctx), env=CLASSIC, check=False)
    if check:
        assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def run(b: PrivateBerthd, image: str, *cmd: str) -> str:
    return b.docker("run", "--rm", image, *cmd).stdout.decode()


def tar_of(ctx: Path) -> bytes:
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for path in sorted(ctx.rglob("*")):
            tf.add(path, arcname=str(path.relative_to(ctx)), recursive=False)
    return buf.getvalue()


def api_build(b: PrivateBerthd, ctx: Path, query: str = "") -> list[dict[str, object]]:
    """The stream's items; an error answered before the stream (a bad Dockerfile) as one error item."""
    status, body = b.api("POST", f"/v1.41/build?{query}", tar_of(ctx))
    if status != 200:
        assert status in (400, 404), body
        return [{"error": json.loads(body)["message"], "status": status}]
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def assert_nothing_left(b: PrivateBerthd) -> None:
    assert b.docker("ps", "-aq").stdout == b""
    assert not list((b.root / "snapshots" / "active").glob("*.json"))
    assert _mounts_under(str(b.root)) == []
    tmp = b.root / "builder" / "tmp"
    deadline = time.monotonic() + 10      # the context is removed after the answer, on a thread of its own
    while tmp.exists() and list(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not tmp.exists() or not list(tmp.iterdir())


def test_docker_cli_build_prints_docker_s_steps_and_tags_every_name(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nARG WHO=world\nRUN echo hello $WHO > /greeting && echo ran\n"
                            "COPY a.txt /a.txt\nCMD [\"cat\", \"/greeting\"]\n", {"a.txt": "A\n"})
    _, out, _ = build(b, ctx, "-t", "cli:1", "-t", "cli:2", "--build-arg", "WHO=berth",
                      "--iidfile", str(tmp_path / "iid"))
    lines = out.splitlines()
    assert "Step 1/5 : FROM busybox" in lines and "Step 3/5 : RUN echo hello $WHO > /greeting && echo ran" in lines
    assert any(line.startswith(" ---> Running in ") for line in lines) and "ran" in lines
    assert any(line.startswith("Removing intermediate container ") for line in lines)
    assert "Successfully tagged cli:1" in lines and "Successfully tagged cli:2" in lines
    built = [line for line in lines if line.startswith("Successfully built ")][0].split()[-1]
    assert (tmp_path / "iid").read_text().startswith("sha256:" + built)
    assert run(b, "cli:2") == "hello berth\n"
    inspect = json.loads(b.docker("image", "inspect", "cli:1").stdout)[0]
    assert inspect["Id"].startswith("sha256:" + built)
    assert not any("WHO" in e for e in inspect["Config"]["Env"])     # build args never reach the config
    history = b.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "cli:1").stdout.decode().splitlines()
    assert history[0] == '/bin/sh -c #(nop)  CMD ["cat" "/greeting"]'
    assert history[2] == "|1 WHO=berth /bin/sh -c echo hello $WHO > /greeting && echo ran"
    assert_nothing_left(b)


def test_quiet_build_prints_only_the_image_id(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo noisy\n")
    _, out, _ = build(b, ctx, "-q", "--no-cache")
    assert out.startswith("sha256:") and "noisy" not in out and len(out.strip()) == 71


def test_docker_py_builds_and_finds_the_image(b: PrivateBerthd, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    ctx = context(tmp_path, "FROM busybox\nARG V\nLABEL v=$V\nRUN echo py-$V > /v\n")
    client = docker.DockerClient(base_url=b.host, version="1.41")
    try:
        image, logs = client.images.build(path=str(ctx), tag="py:1", buildargs={"V": "7"}, rm=True)
        assert image.labels == {"v": "7"} and "py:1" in image.tags
        assert any("Successfully built" in item.get("stream", "") for item in logs)
        with pytest.raises(docker.errors.BuildError) as failed:
            client.images.build(path=str(context(tmp_path / "bad", "FROM busybox\nRUN exit 3\n")))
        assert "returned a non-zero code: 3" in str(failed.value)
    finally:
        client.close()


def test_a_failing_run_reports_its_code_and_output_tags_nothing_and_leaves_nothing(b: PrivateBerthd,
                                                                                   tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo before-failing && false\nRUN echo never\n")
    items = api_build(b, ctx, "t=fails:1")
    streams = "".join(str(i.get("stream", "")) for i in items)
    assert "before-failing" in streams and "never" not in streams.replace("RUN echo never", "")
    assert items[-1]["errorDetail"] == {"code": 1, "message": "The command '/bin/sh -c echo before-failing && "
                                                              "false' returned a non-zero code: 1"}
    code, _, err = build(b, ctx, "-t", "fails:1", check=False)
    assert code != 0 and "returned a non-zero code: 1" in err
    assert b.docker("image", "inspect", "fails:1", check=False).returncode != 0
    assert_nothing_left(b)


@pytest.mark.parametrize(("dockerfile", "files", "message"), [
    ("FROM busybox\nCOPY ../x /x\n", {}, "forbidden path outside the build context"),
    ("FROM busybox\nCOPY /../../etc/passwd /x\n", {}, "forbidden path outside the build context"),
    ("FROM busybox\nCOPY missing.txt /x\n", {}, "file not found in build context"),
    ("FROM busybox\nCOPY *.nothing /x/\n", {}, "no source files were specified"),
    ("FROM busybox\nFROBNICATE now\n", {}, "unknown instruction"),
    ("FROM 127.0.0.1:1/no-such-image-here:1\nRUN true\n", {}, "no-such-image-here"),
    ("FROM busybox\nCOPY --chown=nosuchuser a /a\n", {"a": "a"}, "nosuchuser"),
    ("FROM busybox\nCOPY a b /notadir\n", {"a": "a", "b": "b"}, "must be a directory"),
    ("FROM busybox\nRUN --mount=type=cache,target=/c true\n", {}, "requires buildkit"),
    ("FROM busybox\nCOPY --link a /a\n", {"a": "a"}, "requires buildkit"),
])
def test_bad_inputs_fail_clearly_with_the_dockerfile_line(b: PrivateBerthd, tmp_path: Path, dockerfile: str,
                                                          files: dict[str, str], message: str) -> None:
    ctx = context(tmp_path, dockerfile, files)
    items = api_build(b, ctx, "t=bad:1")
    error = str(items[-1].get("error", ""))
    assert message in error.lower() or message in error, items
    if "FROBNICATE" not in dockerfile:
        assert "line 2" in error or "no-such-image-here" in error
    else:
        assert "line 2" in error
    assert b.docker("image", "inspect", "bad:1", check=False).returncode != 0
    assert_nothing_left(b)


def test_a_symlink_out_of_the_context_is_never_followed(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nCOPY dir /dir\nCOPY escape /escape\n")
    (ctx / "dir").mkdir()
    os.symlink("/etc/shadow", ctx / "dir" / "shadow")
    os.symlink("/etc/shadow", ctx / "escape")
    items = api_build(b, ctx, "t=links:1")
    assert "error" in items[-1] and "line 3" in str(items[-1]["error"])   # the top-level link stays in the context
    ctx2 = context(tmp_path / "ok", "FROM busybox\nCOPY dir /dir\n")
    (ctx2 / "dir").mkdir()
    os.symlink("/etc/shadow", ctx2 / "dir" / "shadow")
    build(b, ctx2, "-t", "links:2")
    assert run(b, "links:2", "readlink", "/dir/shadow") == "/etc/shadow\n"


def test_heredocs_chmod_and_add_from_a_url(b: PrivateBerthd, tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    (served / "remote.txt").write_text("from the web\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(served), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        ctx = context(tmp_path / "ctx", f"""FROM busybox
RUN <<EOF
echo first > /heredoc
echo second >> /heredoc
EOF
RUN <<EOF
#!/usr/bin/awk -f
BEGIN {{ print "from awk" > "/awk-out" }}
EOF
COPY <<EOT /etc/greeting.txt
hello from a heredoc
EOT
COPY --chmod=0640 a.sh /a.sh
ADD http://127.0.0.1:{port}/remote.txt /downloads/
""", {"a.sh": "echo\n"})
        build(b, ctx, "-t", "extras:1", "--network", "host")
        assert run(b, "extras:1", "cat", "/heredoc", "/etc/greeting.txt", "/downloads/remote.txt") == \
            "first\nsecond\nhello from a heredoc\nfrom the web\n"
        assert run(b, "extras:1", "stat", "-c", "%a %s", "/a.sh", "/downloads/remote.txt") == "640 5\n600 13\n"
        assert run(b, "extras:1", "cat", "/awk-out") == "from awk\n"
    finally:
        server.shutdown()
        server.server_close()


def test_network_none_has_only_loopback_and_host_reaches_the_host(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN ls /sys/class/net > /ifaces\n")
    build(b, ctx, "-t", "net:none", "--network", "none", "--no-cache")
    assert run(b, "net:none", "cat", "/ifaces") == "lo\n"
    served = tmp_path / "www"
    served.mkdir()
    (served / "f").write_text("host only\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(served), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        ctx = context(tmp_path / "host", f"FROM busybox\nRUN wget -q -O /got http://127.0.0.1:{port}/f\n")
        build(b, ctx, "-t", "net:host", "--network", "host", "--no-cache")
        assert run(b, "net:host", "cat", "/got") == "host only\n"
    finally:
        server.shutdown()
        server.server_close()


def test_context_over_the_limit_is_refused(tmp_path: Path) -> None:
    import io

    from berth.build.intake import receive_context
    from berth.errors import LimitExceeded

    ctx = context(tmp_path / "big", "FROM busybox\n", {"big": "x" * 300_000})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(LimitExceeded, match="larger than berth's limit of 100000 bytes"):
        receive_context(io.BytesIO(tar_of(ctx)), dest, limit=100_000)


def test_build_query_parameters_as_the_20_10_cli_sends_them(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nARG A\nRUN echo $A > /a\n")
    query = ("buildargs=" + quote('{"A":"x"}') + "&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0"
             "&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=Dockerfile&labels=%7B%7D&memory=0&memswap=0"
             "&networkmode=default&rm=1&shmsize=0&t=params%3A1&target=&ulimits=null&version=1")
    items = api_build(b, ctx, query)
    assert items[-1] == {"stream": "Successfully tagged params:1\n"}
    assert {"aux": {"ID": json.loads(b.docker("image", "inspect", "params:1").stdout)[0]["Id"]}} in items


@pytest.mark.interop
def test_from_an_image_that_is_not_local_pulls_it_through_the_engine(b: PrivateBerthd, tmp_path: Path) -> None:
    from tests.distribution.registry import ReferenceRegistry
    from tests.images.archives import docker_archive, simple_layer
    from tests.peers import busybox_rootfs_tar

    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive([busybox_rootfs_tar(), simple_layer({"hello.txt": b"pulled\n"})],
                                       tags=["x:1"], cmd=("cat", "/hello.txt")))
    with ReferenceRegistry(tmp_path) as reg:
        reg.seed(archive, "team/base:1")
        ctx = context(tmp_path / "ctx", f"FROM {reg.host}/team/base:1\nRUN cat /hello.txt > /copy\n")
        _, out, _ = build(b, ctx, "-t", "pulled-base:1")
        assert "Pulling from team/base" in out or "Downloaded newer image" in out, out
        assert run(b, "pulled-base:1", "cat", "/copy") == "pulled\n"
        _, out, _ = build(b, ctx, "-t", "pulled-base:1", "--pull")      # --pull asks again: up to date
        assert "Image is up to date" in out


def test_berth_build_drives_the_same_builder_and_ping_never_offers_buildkit(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nCOPY a.txt /a.txt\nCMD [\"cat\", \"/a.txt\"]\n", {"a.txt": "via berth\n"})
    proc = b.berth("build", "-t", "via-berth:1", str(ctx))
    assert b"Successfully tagged via-berth:1" in proc.stdout, proc.stdout
    assert run(b, "via-berth:1") == "via berth\n"
    import http.client as hc
    import socket

    class Unix(hc.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(b.socket_path))

    conn = Unix("localhost")
    conn.request("HEAD", "/_ping")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Builder-Version") in (None, "1")
    conn.close()


def test_a_body_that_is_a_plain_dockerfile_builds_with_an_empty_context(b: PrivateBerthd) -> None:
    status, body = b.api("POST", "/v1.41/build?t=plain-body:1", b"FROM busybox\nRUN echo plain > /p\n")
    assert status == 200 and b"Successfully tagged plain-body:1" in body, body
    assert run(b, "plain-body:1", "cat", "/p") == "plain\n"


def test_add_host_lines_reach_the_run_steps_hosts_file(b: PrivateBerthd, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN cat /etc/hosts\n")
    _, out, _ = build(b, ctx, "--no-cache", "--add-host", "db.example:10.0.0.2", "--add-host", "gw:host-gateway",
                      "--add-host", "v6=fd00::7")
    lines = out.splitlines()
    assert "10.0.0.2\tdb.example" in lines and "fd00::7\tv6" in lines
    assert any(line.endswith("\tgw") and line.split("\t")[0].count(".") == 3 for line in lines), lines
    for bad, message in (("db%3Anot-an-ip", b"invalid IP address in add-host"), ("nocolon", b"bad format")):
        status, body = b.api("POST", f"/v1.41/build?extrahosts={bad}", b"FROM busybox\n")
        assert status == 400 and message in body, body
    assert_nothing_left(b)


def test_a_dockerfile_refused_before_any_step_is_an_http_error_as_dockerd_answers_it(b: PrivateBerthd,
                                                                                     tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN <<EOF\necho unterminated heredoc\n")
    code, _, err = build(b, ctx, "-t", "refused:1", check=False)
    assert code == 1 and "Error response from daemon" in err and "line" in err, err
    status, _ = b.api("POST", "/v1.41/build?dockerfile=missing.Dockerfile", tar_of(context(tmp_path / "x",
                                                                                           "FROM busybox\n")))
    assert status == 404


def test_a_client_going_away_stops_the_build_and_leaves_nothing(b: PrivateBerthd, tmp_path: Path) -> None:
    import subprocess

    from tests.peers import DOCKER_CLI
    ctx = context(tmp_path, "FROM busybox\nRUN echo started && sleep 60\n")
    proc = subprocess.Popen([DOCKER_CLI, "-H", b.host, "build", "--no-cache", "-t", "gone:1", str(ctx)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **CLASSIC})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == b"started":
            break
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while b.docker("ps", "-aq").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_nothing_left(b)
    assert b.docker("image", "inspect", "gone:1", check=False).returncode != 0


@pytest.mark.interop
def test_docker_compose_build_works(b: PrivateBerthd, tmp_path: Path) -> None:
    import shutil
    import subprocess

    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (scripts/install.sh installs it)")
    context(tmp_path / "app", "FROM busybox\nARG MSG\nRUN echo $MSG > /msg\nCMD [\"cat\", \"/msg\"]\n")
    (tmp_path / "docker-compose.yml").write_text(
        "version: '3.8'\nservices:\n  web:\n    build:\n      context: ./app\n      args:\n        MSG: from-compose\n"
        "      labels:\n        built.with: compose\n    image: composed:1\n")
    env = {**os.environ, "DOCKER_HOST": b.host, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
    proc = subprocess.run([compose, "-p", "buildtest", "build"], cwd=tmp_path, env=env, capture_output=True)
    assert proc.returncode == 0, (proc.stdout.decode(), proc.stderr.decode())
    assert run(b, "composed:1") == "from-compose\n"
    labels = json.loads(b.docker("image", "inspect", "composed:1").stdout)[0]["Config"]["Labels"]
    assert labels["built.with"] == "compose"


def test_history_names_the_intermediate_images_and_their_tags(b: PrivateBerthd, tmp_path: Path) -> None:
    b.docker("load", input=layered_image_archive())          # berth-layered:1: a base with a history of 6 steps
    build(b, context(tmp_path / "base", "FROM berth-layered:1\nENV A=1\n"), "-t", "hist-base:1")
    build(b, context(tmp_path / "top", "FROM hist-base:1\nLABEL x=y\nCMD [\"true\"]\n"), "-t", "hist:1")
    status, body = b.api("GET", "/v1.41/images/hist:1/history")
    assert status == 200, body
    rows = json.loads(body)
    chain = [r["Id"] for r in rows]
    # hist:1 (CMD), its LABEL step, hist-base:1 (ENV), berth-layered:1: images that are all there
    assert all(i.startswith("sha256:") for i in chain[:4]), chain
    for image_id in chain[:4]:
        assert b.api("GET", f"/v1.41/images/{image_id}/json")[0] == 200
    assert [r["Tags"] for r in rows[:4]] == [["hist:1"], None, ["hist-base:1"], ["berth-layered:1"]]
    # the loaded base has no parent: its older steps made no image here
    assert len(rows) > 5 and all(r["Id"] == "<missing>" and r["Tags"] is None for r in rows[4:])
    assert b.api("DELETE", "/v1.41/images/hist:1")[0] == 200   # the intermediate LABEL image goes with it
    status, body = b.api("GET", "/v1.41/images/hist-base:1/history")
    assert [r["Tags"] for r in json.loads(body)[:3]] == [["hist-base:1"], ["berth-layered:1"], None]
