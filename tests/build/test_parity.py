"""The same Dockerfiles built by a real dockerd's classic builder (DOCKER_BUILDKIT=0) and by berthd, both driven by
the real docker CLI from the same busybox base: the images hold the same files (export tars compared by name, type,
mode, owner, link target and contents), the same config and the same number of history entries and layers."""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.berthd import PrivateBerthd
from tests.peers import Daemon, docker, seeded_daemon  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.slow]
CLASSIC = {"DOCKER_BUILDKIT": "0", "DOCKER_API_VERSION": "1.41"}
# Paths the daemons' init layers and mounts put into a container's export: not part of the image.
_NOT_IMAGE = (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", "dev", "proc", "sys")
_CHECKSUM = re.compile(r"(file|dir|multi):[0-9a-f]{64}")
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "Healthcheck",
               "OnBuild", "Shell", "StopSignal")


@pytest.fixture(scope="module")
def pair(seeded_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
         ) -> Iterator[tuple[str, PrivateBerthd]]:
    tar = tmp_path_factory.mktemp("build-parity") / "seed.tar"
    docker(seeded_daemon.host, "save", "-o", str(tar), seeded_daemon.images.busybox)
    with PrivateBerthd() as b:
        b.docker("load", "-i", str(tar))
        yield seeded_daemon.host, b


def _tar(entries: dict[str, tuple[bytes | None, int, int, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, (data, mode, uid, gid) in entries.items():
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_context(root: Path, dockerfile: str, dockerignore: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    if dockerignore:
        (root / ".dockerignore").write_text(dockerignore)
    files = root / "files"
    (files / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    (files / "a.txt").write_text("alpha\n")
    (files / "sub" / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(files / "sub" / "run.sh", 0o755)
    (files / "sub" / "deeper" / "private").write_text("p\n")
    os.chmod(files / "sub" / "deeper" / "private", 0o600)
    (files / "secret.txt").write_text("must not be copied\n")
    if not (files / "link").is_symlink():
        os.symlink("a.txt", files / "link")
        os.symlink("/etc/passwd", files / "sub" / "out-of-context")   # copied as a link, never followed
        os.symlink("../../files/a.txt", root / "in-context-link")
    (root / "debug.log").write_text("ignored\n")
    (root / "keep.log").write_text("kept by an exception\n")
    (root / "single.txt").write_text("single\n")
    (root / "plain.txt").write_text("plain\n")
    (root / "archive.tar").write_bytes(_tar({"x": (None, 0o755, 0, 0), "x/y.txt": (b"in the archive\n", 0o640, 1000,
                                                                                     1000)}))
    return root


def listing(host: str, image: str) -> dict[str, tuple[Any, ...]]:
    cid = docker(host, "create", image, "true").stdout.decode().strip()
    try:
        data = docker(host, "export", cid).stdout
    finally:
        docker(host, "rm", "-f", cid, check=False)
    out: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf:
            name = m.name.rstrip("/").removeprefix("./")
            if not name or name in _NOT_IMAGE or name.split("/")[0] in ("dev", "proc", "sys"):
                continue
            digest = ""
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()[:16]
            out[name] = (m.type, m.mode & 0o7777, m.uid, m.gid, m.linkname, digest)
    if "etc" in out and not any(k.startswith("etc/") for k in out):
        del out["etc"]   # only the daemon's mount points made it (a scratch image has no /etc)
    return out


def image_facts(host: str, image: str) -> tuple[dict[str, Any], list[str], int]:
    """The config, the history's image ids (<id> or <missing>) and created_by texts (COPY/ADD source checksums
    masked: Docker's tarsum is its own) and the number of layers."""
    doc = json.loads(docker(host, "image", "inspect", image).stdout)[0]
    config = {k: doc["Config"].get(k) or None for k in CONFIG_KEYS}
    history = docker(host, "history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", image).stdout.decode()
    # each row's id: the image that step made while it is still there (the intermediate images), else <missing>
    texts = [_CHECKSUM.sub(r"\1:<sum>", re.sub(r"^sha256:[0-9a-f]{64} ", "<id> ", line))
             for line in history.splitlines()]
    return config, texts, len(doc["RootFS"]["Layers"])


def build_both(pair: tuple[str, PrivateBerthd], ctx: Path, tag: str, *args: str) -> None:
    host, b = pair
    for where in (host, b.host):
        proc = docker(where, "build", "--network=none", "-t", tag, *args, str(ctx), env=CLASSIC, check=False)
        assert proc.returncode == 0, (where, proc.stdout.decode()[-3000:], proc.stderr.decode())


def assert_same_image(pair: tuple[str, PrivateBerthd], tag: str) -> None:
    host, b = pair
    theirs, ours = listing(host, tag), listing(b.host, tag)
    only_theirs = {k: v for k, v in theirs.items() if ours.get(k) != v}
    only_ours = {k: v for k, v in ours.items() if theirs.get(k) != v}
    assert (only_theirs, only_ours) == ({}, {})
    assert image_facts(host, tag) == image_facts(b.host, tag)


EVERY_INSTRUCTION = """\
ARG BASE=busybox:latest
FROM ${BASE} AS base
ARG VERSION=1.0
LABEL version=$VERSION org.example.name="parity test"
MAINTAINER berth <berth@example.com>
ENV APP_HOME=/srv/app PATH=/srv/app/bin:$PATH
ENV LEGACY legacy form value
WORKDIR $APP_HOME/work
COPY files/ ./files/
COPY --chown=nobody:nogroup single.txt /owned/
COPY --chown=1234 single.txt keep.log /numeric/
ADD archive.tar /extracted/
ADD plain.txt /added.txt
COPY in-context-link files/l* /links/
RUN mkdir -p /data && echo "$VERSION $LEGACY" > /data/version && chmod 0750 /data && ln -s /data/version /data/ln
RUN rm /bin/vi && touch /bin/new
USER nobody
EXPOSE 8080 53/udp
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD wget -q -O- http://localhost:8080/ || exit 1
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGTERM
ONBUILD RUN echo triggered > /onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]

FROM busybox:latest AS second
ARG VERSION
ARG BASE
COPY --from=base /data/version /from-base
COPY --from=0 /srv/app/work/files/sub /from-index/
RUN echo "${VERSION:-unset} ${BASE:-unset} ${NOT_SET:-dflt}" > /stage2
ENTRYPOINT ["/bin/echo"]
"""


def test_every_instruction_multi_stage_and_dockerignore_exceptions(pair: tuple[str, PrivateBerthd],
                                                                   tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", EVERY_INSTRUCTION, "*.log\n!keep.log\nfiles/secret*\n")
    build_both(pair, ctx, "parity-all:1", "--build-arg", "VERSION=2.5")
    assert_same_image(pair, "parity-all:1")
    build_both(pair, ctx, "parity-base:1", "--target", "base")
    assert_same_image(pair, "parity-base:1")
    ours = listing(pair[1].host, "parity-base:1")
    assert "srv/app/work/files/secret.txt" not in ours and "srv/app/work/files/a.txt" in ours
    assert ours["owned/single.txt"][2:4] == (65534, 65534)
    assert ours["extracted/x/y.txt"][1:4] == (0o640, 1000, 1000)


def test_onbuild_triggers_run_in_the_child_build(pair: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    parent = make_context(tmp_path / "parent", "FROM busybox:latest\nONBUILD RUN echo child > /from-trigger\n"
                                               "ONBUILD ENV TRIGGERED=yes\nCMD [\"sh\"]\n")
    build_both(pair, parent, "parity-onbuild-parent:1")
    child = make_context(tmp_path / "child", "FROM parity-onbuild-parent:1\nRUN cat /from-trigger\n")
    build_both(pair, child, "parity-onbuild-child:1")
    assert_same_image(pair, "parity-onbuild-child:1")


def test_entrypoint_resets_an_inherited_cmd_and_build_labels(pair: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox:latest\nENTRYPOINT [\"top\"]\nUSER 1000:1000\n"
                                         "WORKDIR relative/dir\nWORKDIR ../other\n")
    build_both(pair, ctx, "parity-entry:1", "--label", "built.by=test", "--label", "b=2")
    assert_same_image(pair, "parity-entry:1")


def test_scratch_stages_and_copy_from_them(pair: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM scratch AS files\nCOPY single.txt files/ /payload/\nWORKDIR /w\n"
                                         "ENV A=1\nLABEL from=scratch\n\n"
                                         "FROM busybox:latest\nCOPY --from=files /payload /copied\n"
                                         "RUN find /copied | sort > /listing\n")
    build_both(pair, ctx, "parity-scratch:1", "--target", "files")
    assert_same_image(pair, "parity-scratch:1")
    build_both(pair, ctx, "parity-from-scratch:1")
    assert_same_image(pair, "parity-from-scratch:1")


_SHORT_ID = re.compile(r"\b[0-9a-f]{12}\b")


def _output_lines(host: str, ctx: Path, *args: str) -> list[str]:
    proc = docker(host, "build", "--network=none", *args, str(ctx), env=CLASSIC, check=False)
    assert proc.returncode == 0, (host, proc.stderr.decode())
    out = proc.stdout.decode()
    return [_SHORT_ID.sub("<id>", line) for line in out.splitlines() if not line.startswith("Sending build context")]


def test_the_build_output_has_dockerds_lines(pair: tuple[str, PrivateBerthd], tmp_path: Path) -> None:
    """Step lines, the parser's warnings, ' ---> Running in' and 'Removing intermediate container' for RUN and for
    metadata steps (dockerd commits those from a container too), cache lines, trigger lines, a RUN's output."""
    text = ("ARG G=1\nFROM busybox:latest AS base\nARG VERSION=1.0\nLABEL version=$VERSION\nMAINTAINER m\nENV A=1\n"
            "WORKDIR /w\nCOPY single.txt ./\nADD archive.tar /x/\nRUN echo \"visible $VERSION\" \\\n\n  && true\n"
            "USER nobody\nEXPOSE 80\nVOLUME /data\nHEALTHCHECK CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\n"
            "STOPSIGNAL SIGTERM\nONBUILD RUN echo triggered\nONBUILD ENV T=1\nENTRYPOINT [\"sh\"]\nCMD [\"-c\", \"true\"]\n"
            "FROM base AS child\nRUN id -u\n")
    ctx = make_context(tmp_path / "ctx", text, "*.log\n!keep.log\n")
    host, b = pair
    # cold, then the same build from the cache (with its triggers), then a --target with an unused build arg
    for args in (("--no-cache", "--build-arg", "VERSION=2.5", "--label", "l=v"), ("--build-arg", "VERSION=2.5"),
                 ("--no-cache", "--target", "base", "--build-arg", "NOPE=1")):
        theirs, ours = _output_lines(host, ctx, *args), _output_lines(b.host, ctx, *args)
        assert ours == theirs, "\n".join(difflib.unified_diff(theirs, ours, "dockerd", "berthd", lineterm=""))
    assert any(line.startswith("[WARNING]: Empty continuation line") for line in ours + theirs)
