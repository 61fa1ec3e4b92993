"""`berth build` against the docker CLI (28.x, legacy builder: DOCKER_BUILDKIT=0).

1. Wire differential, no daemon needed: both CLIs talk to a tiny recording Engine API server; the POST /build
   they send must carry the same query, headers and context tar (names, types, modes, owners, mtimes, contents,
   total size), and they must print the same thing for the same answer stream (including a failed build's exit
   code).
2. Against a real dockerd (classic builder): the same build through both CLIs prints the same lines, ids aside.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import peers
from tests.cli.tiny_daemon import Reply, Seen, TinyDaemon
from tests.peers import DOCKER_CLI, Daemon, docker

seeded_daemon = peers.seeded_daemon

pytestmark = [pytest.mark.interop]

IMAGE_ID = "sha256:" + "ab" * 32
STREAM: list[dict[str, Any]] = [
    {"stream": "Step 1/2 : FROM busybox\n"}, {"stream": " ---> 1575fdbb4d94\n"},
    {"stream": "Step 2/2 : RUN echo hi\n"}, {"stream": " ---> Running in 0123456789ab\n"}, {"stream": "hi\n"},
    {"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "progress": "[==>  ] 1B/2B",
     "id": "abcdef"},
    {"status": "Pull complete", "progressDetail": {}, "id": "abcdef"},
    {"aux": {"ID": IMAGE_ID}}, {"stream": "Successfully built abababababab\n"},
    {"stream": "Successfully tagged x:latest\n"},
]
FAILED: list[dict[str, Any]] = [{"stream": "Step 1/1 : RUN exit 3\n"}, {"stream": " ---> Running in 0123456789ab\n"},
          {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"},
           "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}]


def _env(tmp: Path) -> dict[str, str]:
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "DOCKER_CONFIG": str(config),
            "DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false", "BERTH_NO_AUTOSTART": "1",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "BUILD_ARG_FROM_ENV": "from-env"}


def run_docker(host: str, args: list[str], cwd: Path, env: dict[str, str],
               stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([DOCKER_CLI, "-H", host, "build", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=120)


def run_berth(host: str, args: list[str], cwd: Path, env: dict[str, str],
              stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", host, "build", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, timeout=120)


def _stream(messages: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(m).encode() + b"\r\n" for m in messages]


def _build_request(daemon: TinyDaemon) -> Seen:
    (seen,) = [s for s in daemon.seen if s.path.split("?")[0].endswith("/build")]
    return seen


_RANDOM_DOCKERFILE = re.compile(r"\.dockerfile\.[0-9a-f]{20}")


def _members(body: bytes) -> list[tuple[Any, ...]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
        for m in tar.getmembers():
            data = b""
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                data = _RANDOM_DOCKERFILE.sub(".dockerfile.R", f.read().decode(errors="replace")).encode()
            mtime = None if _RANDOM_DOCKERFILE.fullmatch(m.name) or m.name == ".dockerignore" else m.mtime
            out.append((_RANDOM_DOCKERFILE.sub(".dockerfile.R", m.name), m.type, m.mode, m.uid, m.gid, m.uname,
                        m.gname, mtime, m.size, m.linkname, data))
    return out


def _completed(body: bytes) -> bytes:
    """docker's ReplaceFileTarWrapper output (a Dockerfile from stdin or outside the context) stops right after the
    appended file's bytes: pad it to a whole tar for reading."""
    return body + tarfile.NUL * (-len(body) % tarfile.BLOCKSIZE) + tarfile.NUL * 2 * tarfile.BLOCKSIZE


def _query(seen: Seen) -> dict[str, list[str]]:
    query = parse_qs(urlsplit(seen.path).query, keep_blank_values=True)
    if "dockerfile" in query:
        query["dockerfile"] = [_RANDOM_DOCKERFILE.sub(".dockerfile.R", v) for v in query["dockerfile"]]
    return query


def _stderr(text: bytes) -> str:
    """Both CLIs' error output without docker's legacy-builder deprecation notice."""
    lines = text.decode(errors="replace").splitlines()
    while lines and (lines[0].startswith(("DEPRECATED:", " ")) or lines[0] == ""):
        lines.pop(0)
    return "\n".join(lines).replace("berth", "docker")


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    for name, data in {"Dockerfile": "FROM busybox\nRUN echo hi\n", "app/main.py": "print(1)\n",
                       "app/cache.pyc": "x", "logs/a.log": "a", "logs/keep.log": "k", "docs/build/Dockerfile": "",
                       "big.bin": "x" * 70_000, "exec.sh": "#!/bin/sh\n", "caf\u00e9.txt": "utf-8 name",
                       "deep/" + "d" * 60 + "/" + "e" * 60 + "/long-name.txt": "long"}.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
    os.chmod(ctx / "exec.sh", 0o755)
    os.chmod(ctx / "app", 0o750)
    (ctx / "link-out").symlink_to("/etc/passwd")
    (ctx / "app" / "link-in").symlink_to("main.py")
    os.link(ctx / "app" / "main.py", ctx / "hardlink.py")
    (ctx / ".dockerignore").write_text("**/*.pyc\nlogs\n!logs/keep.log\ndocs\n")
    for path in [ctx, *ctx.rglob("*")]:
        os.utime(path, (1_650_000_000, 1_650_000_000), follow_symlinks=False)
    return ctx


WIRE_CASES: dict[str, list[str]] = {
    "plain": ["ctx"],
    "every flag": ["-t", "x", "-t", "y:2", "--build-arg", "A=1", "--build-arg", "BUILD_ARG_FROM_ENV",
                   "--build-arg", "UNSET_ARG", "--label", "l=v", "--label", "bare", "--target", "t", "--no-cache",
                   "--pull", "--network", "host", "--cache-from", "a", "--cache-from", "b:1", "--platform",
                   "Linux/AMD64", "--rm=false", "--force-rm", "--iidfile", "IIDFILE", "ctx"],
    "dockerfile in an excluded dir": ["-f", "ctx/docs/build/Dockerfile", "ctx"],
    "dockerfile outside": ["-f", "outside.Dockerfile", "ctx"],
    "resource flags": ["--add-host", "h:1.2.3.4", "--add-host", "g=5.6.7.8", "--cgroup-parent", "cg", "-c", "512",
                       "--cpu-period", "100000", "--cpu-quota", "50000", "--cpuset-cpus", "0-1", "--cpuset-mems",
                       "0", "--isolation", "default", "-m", "512m", "--memory-swap", "1g", "--security-opt",
                       "seccomp=unconfined", "--shm-size", "64m", "--ulimit", "nofile=1024:2048", "--ulimit",
                       "nproc=10", "--disable-content-trust=true", "ctx"],
    "compressed": ["--compress", "ctx"],
    "stored credentials": ["CREDENTIALS", "ctx"],
}

_AUTHS = {"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpwQHNzJjw+"},
                    "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="}, "empty.example": {}}}


@pytest.mark.parametrize("case", sorted(WIRE_CASES))
def test_the_build_request_is_the_docker_clis(tmp_path: Path, context: Path, case: str) -> None:
    (tmp_path / "outside.Dockerfile").write_text("FROM outside\n")
    env = _env(tmp_path)
    if "CREDENTIALS" in WIRE_CASES[case]:
        (tmp_path / "docker-config" / "config.json").write_text(json.dumps(_AUTHS))
    results = []
    for run in (run_docker, run_berth):
        with TinyDaemon(tmp_path / f"{run.__name__}.sock") as daemon:
            daemon.route("POST", "/v1.41/build", Reply(200, _stream(STREAM), {"Content-Type": "application/json"}))
            args = [a.replace("IIDFILE", str(tmp_path / f"{run.__name__}.iid")) for a in WIRE_CASES[case]
                    if a != "CREDENTIALS"]
            proc = run(f"unix://{daemon.socket_path}", args, tmp_path, env)
            assert proc.returncode == 0, proc.stderr.decode()
            seen = _build_request(daemon)
            results.append((proc, seen))
    (dproc, dseen), (bproc, bseen) = results
    assert _query(bseen) == _query(dseen)
    for header in ("content-type", "x-registry-config"):
        assert {k.lower(): v for k, v in bseen.headers.items()}.get(header) == \
            {k.lower(): v for k, v in dseen.headers.items()}.get(header)
    dbody = dseen.body
    if case == "compressed":
        # both gzip the context while sending it; the compressors differ, the tar inside must not
        assert bseen.body[:2] == dseen.body[:2] == b"\x1f\x8b"
        assert _members(gzip.decompress(bseen.body)) == _members(gzip.decompress(dseen.body))
        assert bproc.stdout.split(b"\n", 1)[1] == dproc.stdout.split(b"\n", 1)[1]
        return
    if case == "dockerfile outside":
        # docker's ReplaceFileTarWrapper ends the stream right after the appended Dockerfile's bytes (no padding,
        # no end blocks; dockerd copes); berth sends a complete tar, so only the entries and the lines compare
        dbody = _completed(dbody)
        assert bproc.stdout.split(b"\n", 1)[1] == dproc.stdout.split(b"\n", 1)[1]
    else:
        assert len(bseen.body) == len(dbody)
        assert bproc.stdout == dproc.stdout
    assert _members(bseen.body) == _members(dbody)
    if "--iidfile" in WIRE_CASES[case]:
        assert (tmp_path / "run_berth.iid").read_text() == (tmp_path / "run_docker.iid").read_text() == IMAGE_ID


STDIN_CASES = {
    "dockerfile on stdin as the context": (["-"], b"FROM busybox\nRUN echo stdin\n"),
    "tar on stdin": (["-"], None),
    "gzipped tar on stdin": (["-"], None),
    "dockerfile on stdin with a directory": (["-f", "-", "ctx"], b"FROM busybox\nRUN echo from -f -\n"),
    "quiet": (["-q", "ctx"], None),
}


def _tar_bytes(gzipped: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        data = b"FROM busybox\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0) if gzipped else buf.getvalue()


@pytest.mark.parametrize("case", sorted(STDIN_CASES))
def test_stdin_contexts_and_quiet_mode_match_the_docker_cli(tmp_path: Path, context: Path, case: str) -> None:
    args, stdin = STDIN_CASES[case]
    if case.endswith("tar on stdin"):
        stdin = _tar_bytes(case.startswith("gzipped"))
    env = _env(tmp_path)
    results = []
    for run in (run_docker, run_berth):
        with TinyDaemon(tmp_path / f"{run.__name__}.sock") as daemon:
            quiet: list[dict[str, Any]] = [{"stream": IMAGE_ID + "\n"}, {"aux": {"ID": IMAGE_ID}}]
            daemon.route("POST", "/v1.41/build", Reply(200, _stream(quiet if "-q" in args else STREAM)))
            proc = run(f"unix://{daemon.socket_path}", args, tmp_path, env, stdin)
            assert proc.returncode == 0, proc.stderr.decode()
            results.append((proc, _build_request(daemon)))
    (dproc, dseen), (bproc, bseen) = results
    assert _query(bseen) == _query(dseen)
    if case.endswith("tar on stdin"):
        assert bseen.body == dseen.body == stdin
    elif "-f" in args:
        assert _members(bseen.body) == _members(_completed(dseen.body))
        assert bproc.stdout.split(b"\n", 1)[1] == dproc.stdout.split(b"\n", 1)[1]  # its size line differs
        return
    else:
        assert [m[:3] + m[5:7] + m[8:] for m in _members(bseen.body)] == \
            [m[:3] + m[5:7] + m[8:] for m in _members(dseen.body)]   # a temporary directory's owner/mtime aside
    assert bproc.stdout == dproc.stdout


def test_a_failed_build_exits_with_the_daemons_code_like_docker(tmp_path: Path, context: Path) -> None:
    env = _env(tmp_path)
    outs = []
    for run in (run_docker, run_berth):
        for quiet in ([], ["-q"]):
            with TinyDaemon(tmp_path / f"{run.__name__}.sock") as daemon:
                daemon.route("POST", "/v1.41/build", Reply(200, _stream(FAILED)))
                proc = run(f"unix://{daemon.socket_path}", [*quiet, "ctx"], tmp_path, env)
            outs.append((proc.returncode, proc.stdout, _stderr(proc.stderr)))
    docker_plain, docker_quiet, berth_plain, berth_quiet = outs
    assert berth_plain == docker_plain
    assert berth_quiet == docker_quiet
    assert berth_plain[0] == 3


def test_daemon_refusal_and_bad_contexts_match_the_docker_cli(tmp_path: Path, context: Path) -> None:
    env = _env(tmp_path)
    for args in (["ctx"], ["nope"], ["-f", "missing.Dockerfile", "ctx"], ["-f", "-", "-"], ["ctx/Dockerfile"]):
        outs = []
        for run in (run_docker, run_berth):
            with TinyDaemon(tmp_path / f"{run.__name__}.sock") as daemon:
                daemon.route("POST", "/v1.41/build", Reply(400, json.dumps(
                    {"message": "dockerfile parse error line 2: unknown instruction: BOGUS"}).encode(),
                    {"Content-Type": "application/json"}))
                proc = run(f"unix://{daemon.socket_path}", args, tmp_path, env, b"")
            outs.append((proc.returncode, proc.stdout, _stderr(proc.stderr).replace(str(tmp_path), "TMP")))
        assert outs[1] == outs[0], args


# ---- against a real dockerd ------------------------------------------------------------------------------------

_IDS = re.compile(r"\b[0-9a-f]{12}\b|sha256:[0-9a-f]{64}")


def _normal(text: bytes) -> str:
    return _IDS.sub("<id>", text.decode(errors="replace"))


REAL_DOCKERFILE = """\
FROM busybox AS base
ARG GREETING=hello
ENV WHO=${GREETING:-nobody}
LABEL stage=base
COPY . /ctx
RUN echo "$WHO from $(cat /ctx/app/main.py)" && ls /ctx | sort

FROM base AS final
WORKDIR /srv
EXPOSE 8080
CMD ["sh", "-c", "echo $WHO"]
"""


@pytest.mark.root
@pytest.mark.slow
def test_berth_build_prints_what_docker_build_prints_against_dockerd(
        seeded_daemon: Daemon, tmp_path: Path, context: Path) -> None:
    (context / "Dockerfile").write_text(REAL_DOCKERFILE)
    env = _env(tmp_path)
    cases = [["--no-cache", "--build-arg", "GREETING=hey", "-t", "berth-build-test:1", "ctx"],
             ["--no-cache", "--target", "base", "ctx"],
             ["-q", "ctx"]]
    try:
        for args in cases:
            d = run_docker(seeded_daemon.host, ["--network=none", *args], tmp_path, env)
            b = run_berth(seeded_daemon.host, ["--network=none", *args], tmp_path, env)
            assert (b.returncode, _normal(b.stdout)) == (d.returncode, _normal(d.stdout)), args
            assert b.returncode == 0, b.stderr.decode()
        config = json.loads(docker(seeded_daemon.host, "image", "inspect", "berth-build-test:1").stdout)[0]["Config"]
        assert "WHO=hey" in config["Env"]
        (context / "Dockerfile").write_text("FROM busybox\nRUN echo out && exit 3\n")
        d = run_docker(seeded_daemon.host, ["--network=none", "ctx"], tmp_path, env)
        b = run_berth(seeded_daemon.host, ["--network=none", "ctx"], tmp_path, env)
        assert (b.returncode, _normal(b.stdout), _stderr(b.stderr)) == \
            (d.returncode, _normal(d.stdout), _stderr(d.stderr))
        assert b.returncode == 3
        assert "returned a non-zero code: 3" in _stderr(b.stderr)
        (context / "Dockerfile").write_text("FROM busybox\nBOGUS\n")
        d = run_docker(seeded_daemon.host, ["ctx"], tmp_path, env)
        b = run_berth(seeded_daemon.host, ["ctx"], tmp_path, env)
        assert (b.returncode, _normal(b.stdout), _stderr(b.stderr)) == \
            (d.returncode, _normal(d.stdout), _stderr(d.stderr))
        assert "dockerfile parse error line 2: unknown instruction: BOGUS" in _stderr(b.stderr)
    finally:
        docker(seeded_daemon.host, "rmi", "-f", "berth-build-test:1", check=False)


# ---- against berthd ----------------------------------------------------------------------------------------------

@pytest.mark.root
@pytest.mark.slow
def test_berth_build_prints_what_docker_build_prints_against_berthd(tmp_path: Path, context: Path) -> None:
    from tests.berthd import PrivateBerthd

    (context / "Dockerfile").write_text(REAL_DOCKERFILE)
    env = _env(tmp_path)
    with PrivateBerthd() as b:
        status, body = b.api("POST", "/berth/images/bootstrap?base=busybox")
        assert status == 200, body
        cases = [["--no-cache", "--build-arg", "GREETING=hey", "-t", "berth-build-test:1", "ctx"],
                 ["--no-cache", "--target", "base", "ctx"],
                 ["-q", "ctx"],
                 ["--iidfile", "IIDFILE", "ctx"]]
        for args in cases:
            outs = []
            for run in (run_docker, run_berth):
                real = [a.replace("IIDFILE", str(tmp_path / f"{run.__name__}.iid")) for a in args]
                proc = run(b.host, ["--network=none", *real], tmp_path, env)
                assert proc.returncode == 0, (run.__name__, proc.stderr.decode(), b.log_tail())
                outs.append(_normal(proc.stdout))
            assert outs[1] == outs[0], args
        assert (tmp_path / "run_berth.iid").read_text() == (tmp_path / "run_docker.iid").read_text()
        config = json.loads(b.docker("image", "inspect", "berth-build-test:1").stdout)[0]["Config"]
        assert "WHO=hey" in config["Env"]
        for dockerfile, code in (("FROM busybox\nRUN echo out && exit 3\n", 3), ("FROM busybox\nBOGUS\n", 1)):
            (context / "Dockerfile").write_text(dockerfile)
            d = run_docker(b.host, ["--network=none", "ctx"], tmp_path, env)
            r = run_berth(b.host, ["--network=none", "ctx"], tmp_path, env)
            assert (r.returncode, _normal(r.stdout), _stderr(r.stderr)) == \
                (d.returncode, _normal(d.stdout), _stderr(d.stderr)) and r.returncode == code, b.log_tail()
