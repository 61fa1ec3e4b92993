"""berth's CLI against the real docker CLI (28.x), both driving the same daemon: same stdout, stderr, exit code.

The daemon is a private dockerd by default; set BERTH_TEST_DAEMON_HOST=unix:///path/to/berthd.sock to run the
same comparisons against berthd. Outputs that contain "N seconds ago" are compared twice if the first pair
straddles a second boundary. Where the daemon itself (or docker, iterating a Go map) orders rows at random, the
comparison is on the header and the sorted rows; a separate test checks berth keeps the daemon's order.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests import peers
from tests.peers import Daemon, docker

seeded_daemon = peers.seeded_daemon  # the session fixture, shared with other modules through tests.peers

pytestmark = [pytest.mark.interop, pytest.mark.root]


def berth(host: str, *args: str, input: bytes | None = None, stdout: int | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "BERTH_NO_AUTOSTART": "1", **(env or {})}
    full_env.pop("DOCKER_HOST", None)
    full_env.pop("BERTH_HOST", None)
    return subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", host, *args], input=input,
                          stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE,
                          env=full_env)


_TMP_SUFFIX = re.compile(r"(docker-import-)\d+")


def _docker_err(text: bytes) -> str:
    return _TMP_SUFFIX.sub(r"\1N", text.decode(errors="replace"))


def _berth_err(text: bytes) -> str:
    """berth's stderr with the program's own name where docker says docker (not inside paths)."""
    return _TMP_SUFFIX.sub(r"\1N", re.sub(r"(?<![/\w-])berth(?=[ :'\"])", "docker", text.decode(errors="replace")))


def _bracketed(b: str, d1: str, d2: str, unordered: bool) -> bool:
    """berth ran between two docker runs: each of its lines must equal that line of one of them (a "N seconds
    ago" can tick between runs, at a different moment for each row)."""
    if b in (d1, d2):
        return True
    views = [(b.splitlines(), d1.splitlines(), d2.splitlines())]
    if unordered:
        views.append((sorted(b.splitlines()), sorted(d1.splitlines()), sorted(d2.splitlines())))
    for bl, l1, l2 in views:
        if len(bl) == len(l1) == len(l2) and all(x in (y, z) for x, y, z in zip(bl, l1, l2, strict=True)):
            return True
    return False


def assert_same(host: str, *args: str, unordered: bool = False, compare_stderr: bool = True) -> str:
    """Run `docker ARGS` and `berth ARGS`; assert equal exit codes, stdout and stderr. Returns docker's stdout.

    unordered: rows may come in another order (the daemon breaks ties of equal creation seconds at random, and
    docker prints the tags of one image in Go's random map order)."""
    for _attempt in range(3):
        d = docker(host, *args, check=False)
        b = berth(host, *args)
        d2 = docker(host, *args, check=False)
        d_out, b_out = d.stdout.decode(), b.stdout.decode()
        same_out = _bracketed(b_out, d_out, d2.stdout.decode(), unordered)
        same_err = not compare_stderr or _docker_err(d.stderr) == _berth_err(b.stderr)
        if same_out and same_err and d.returncode == b.returncode:
            return d_out
    assert b.returncode == d.returncode, f"exit {b.returncode} != docker's {d.returncode}: {b.stderr!r}"
    assert same_out, f"stdout differs\n--- berth\n{b_out}\n--- docker\n{d_out}"
    assert _berth_err(b.stderr) == _docker_err(d.stderr)
    return d_out


# ---- images --------------------------------------------------------------------------------------------------

IMAGES_CASES = [
    [], ["-a"], ["-q"], ["-aq"], ["--no-trunc"], ["-a", "--no-trunc", "-q"], ["--digests"], ["--digests", "-a"],
    ["--format", "{{json .}}"], ["--format", "json"], ["--format", "raw"], ["--format", "{{.Repository}}"],
    ["--format", "table {{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.Size}}"],
    ["--format", "table {{.Repository}}\\t{{.Tag | upper}}\\t{{json .Digest}}"],
    ["--format", "{{.ID}} {{.CreatedAt}} {{.VirtualSize}} {{.Containers}} {{.SharedSize}} {{.UniqueSize}}"],
    ["--format", "{{if eq .Tag \"latest\"}}L:{{.Repository}}{{else}}{{printf \"%-8s|\" .Tag}}{{end}}"],
    ["--digests", "--format", "table {{.Repository}}"],
    ["busybox"], ["busybox:latest"], ["berth-layered"], ["nosuchrepo"],
    ["--filter", "dangling=true"], ["--filter", "dangling=false"], ["-f", "reference=busy*"],
    ["--filter", "reference=berth-layered:1", "-q"], ["--filter", "label=org.example.team=berth"],
    ["--filter", "before=berth-layered:1"],
]


@pytest.mark.parametrize("args", IMAGES_CASES, ids=lambda a: " ".join(a) or "(none)")
def test_images_output_equals_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "images", *args, unordered=True)


@pytest.mark.parametrize("args", [[], ["-q"], ["--format", "{{.Repository}}"]])
def test_image_ls_and_image_list_equal_docker_images(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "image", "ls", *args, unordered=True)
    assert_same(seeded_daemon.host, "image", "list", *args, unordered=True)


def test_images_keeps_the_daemons_row_order_for_distinct_images(seeded_daemon: Daemon) -> None:
    # Two tags of two different images: no Go-map randomness, and distinct created times.
    out = berth(seeded_daemon.host, "images", "--format", "{{.Repository}}:{{.Tag}}",
                "--filter", "reference=berth-layered:1").stdout.decode()
    assert out == "berth-layered:1\n"
    rows = berth(seeded_daemon.host, "images", "-a", "-q", "--no-trunc").stdout.decode().split()
    api = subprocess.run(["curl", "-s", "--unix-socket", seeded_daemon.host.removeprefix("unix://"),
                          "http://x/images/json?all=1"], capture_output=True, check=True).stdout
    daemon_ids = [i["Id"] for i in json.loads(api) for _ in (i.get("RepoTags") or ["<none>:<none>"])]
    # equal as multisets always; as sequences unless the daemon tie-breaks equal timestamps differently per call
    assert sorted(rows) == sorted(daemon_ids)


@pytest.mark.parametrize("args", [
    ["--filter", "bogus=1"], ["--filter", "dangling"], ["-z"], ["a", "b"], ["--format", "{{.Nope}}"],
    ["--format", "{{json.}}"], ["--format", "{{.ID"], ["--format", "{{nope .ID}}"], ["--filter", "dangling=maybe"],
])
def test_images_errors_equal_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "images", *args, compare_stderr=False)
    d = docker(seeded_daemon.host, "images", *args, check=False)
    b = berth(seeded_daemon.host, "images", *args)
    # first line of the message is the same (usage trailers differ only in docker's "SRun" typo)
    assert _berth_err(b.stderr).splitlines()[:1] == _docker_err(d.stderr).splitlines()[:1]


# ---- inspect -------------------------------------------------------------------------------------------------

INSPECT_FORMATS = [
    "{{.ID}}", "{{.Id}}", "{{json .}}", "json", "{{json .Config}}", "{{json .ContainerConfig}}", "{{.Config}}",
    "{{.Config.Env}}", "{{.Config.Labels}}", "{{json .Config.Labels}}", "{{.Config.Entrypoint}}", "{{.Size}}",
    "{{.RootFS}}", "{{.RootFS.Layers}}", "{{len .RootFS.Layers}}", "{{.Metadata}}", "{{.Metadata.LastTagTime}}",
    '{{index .Config.Labels "org.example.team"}}', "{{index .RepoTags 0}}", '{{join .Config.Env ","}}',
    "{{range .Config.Env}}[{{.}}]{{end}}", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{else}}none{{end}}",
    "{{if .Config.Labels}}labels{{else}}no labels{{end}}", "{{with .Config}}{{.WorkingDir}}{{end}}",
    '{{printf "%s/%s %d %q" .Os .Architecture .Size .Comment}}', "{{upper .Os}} {{lower .Os}} {{title .Comment}}",
    '{{.Id}} {{join .Config.Env ","}}', '{{.Id}} {{index .Config.Labels "x"}}', "{{.Nope}}", "{{.Config.Nope}}",
    "{{.RootFS.Type.X}}", "{{.Id", "{{nope .Id}}", "{{- .Os -}} tail", "{{/* comment */}}{{.Os}}",
    "{{$x := .Os}}{{$x}}{{$x = \"b\"}}{{$x}}", '{{eq .Os "linux"}} {{ne .Size 0}} {{lt 1 2}} {{not .Parent}}',
    "{{.Config.Cmd | json}}", "{{split .Os \"n\"}}", '{{slice .Os 1 3}}', "{{truncate .Os 2}}",
]


@pytest.mark.parametrize("fmt", INSPECT_FORMATS)
def test_image_inspect_format_equals_dockers(seeded_daemon: Daemon, fmt: str) -> None:
    assert_same(seeded_daemon.host, "image", "inspect", "--format", fmt, "berth-layered:1", "busybox")


@pytest.mark.parametrize("refs", [["busybox"], ["berth-layered:1", "busybox:latest"], ["nope"], ["busybox", "nope"],
                                  ["nope", "nope2"]])
def test_image_inspect_json_equals_dockers(seeded_daemon: Daemon, refs: list[str]) -> None:
    assert_same(seeded_daemon.host, "image", "inspect", *refs)


def test_image_inspect_by_short_and_full_id_equals_dockers(seeded_daemon: Daemon) -> None:
    full = seeded_daemon.images.layered_id
    assert_same(seeded_daemon.host, "image", "inspect", full)
    assert_same(seeded_daemon.host, "image", "inspect", full.removeprefix("sha256:")[:12])


@pytest.mark.parametrize("args", [["busybox"], ["nope"], ["-f", "{{.Os}}", "busybox"], ["--type", "image", "busybox"],
                                  ["--type", "image", "nope"]])
def test_generic_inspect_of_images_equals_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "inspect", *args)


# ---- history -------------------------------------------------------------------------------------------------

HISTORY_CASES = [
    [], ["--no-trunc"], ["-q"], ["-q", "--no-trunc"], ["-H=false"], ["--human=false", "--no-trunc"],
    ["--format", "{{.ID}}|{{.CreatedAt}}|{{.Size}}|{{.CreatedBy}}"], ["--format", "json"],
    ["--format", "table {{.ID}}\t{{.Comment}}"], ["-H=false", "--format", "{{.CreatedSince}} {{.Size}}"],
    ["--format", "{{json .}}"], ["--format", "table {{.CreatedBy}}"],
]


@pytest.mark.parametrize("args", HISTORY_CASES, ids=lambda a: " ".join(a) or "(none)")
@pytest.mark.parametrize("image", ["berth-layered:1", "busybox"])
def test_history_equals_dockers(seeded_daemon: Daemon, args: list[str], image: str) -> None:
    assert_same(seeded_daemon.host, "history", *args, image)
    assert_same(seeded_daemon.host, "image", "history", *args, image)


@pytest.mark.parametrize("args", [["nope"], ["nope:1"], [], ["a", "b"], ["--format", "{{.Nope}}", "busybox"]])
def test_history_errors_equal_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "history", *args, compare_stderr=False)


# ---- tag / rmi -----------------------------------------------------------------------------------------------

def _repo_tags(host: str, ref: str) -> list[str]:
    out = docker(host, "image", "inspect", "--format", "{{json .RepoTags}}", ref).stdout
    return sorted(json.loads(out))


def test_tag_adds_the_same_names_as_docker(seeded_daemon: Daemon) -> None:
    host = seeded_daemon.host
    d = docker(host, "tag", "busybox", "tagged-by-docker:1", check=False)
    b = berth(host, "tag", "busybox", "tagged-by-berth:1")
    assert (b.returncode, b.stdout, b.stderr) == (d.returncode, d.stdout, d.stderr) == (0, b"", b"")
    b2 = berth(host, "image", "tag", "busybox:latest", "localhost:5000/team/tagged-by-berth")
    assert b2.returncode == 0, b2.stderr
    tags = _repo_tags(host, "busybox")
    assert {"tagged-by-docker:1", "tagged-by-berth:1", "localhost:5000/team/tagged-by-berth:latest"} <= set(tags)
    for name in ("tagged-by-docker:1", "tagged-by-berth:1", "localhost:5000/team/tagged-by-berth"):
        docker(host, "rmi", name)


@pytest.mark.parametrize("args", [["nope:1", "x"], ["busybox", "Bad:x"], ["busybox", "ok::x"], ["busybox"],
                                  ["busybox", "x@sha256:" + "a" * 64], ["busybox", "a" * 64]])
def test_tag_errors_equal_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "tag", *args, compare_stderr=len(args) == 2)


def test_rmi_untag_output_equals_dockers(seeded_daemon: Daemon) -> None:
    host = seeded_daemon.host
    docker(host, "tag", "busybox", "rmi-me:d")
    docker(host, "tag", "busybox", "rmi-me:b")
    d = docker(host, "rmi", "rmi-me:d", check=False)
    b = berth(host, "rmi", "rmi-me:b")
    assert (b.returncode, b.stderr) == (d.returncode, d.stderr) == (0, b"")
    assert b.stdout.decode().replace("rmi-me:b", "X") == d.stdout.decode().replace("rmi-me:d", "X") == "Untagged: X\n"


def test_rmi_deleting_an_image_prints_what_docker_prints(seeded_daemon: Daemon, tmp_path: Path) -> None:
    host = seeded_daemon.host
    tar = tmp_path / "one.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("hello.txt")
        data = b"unique layer for rmi\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    docker(host, "import", str(tar), "rmi-del:d")
    with tarfile.open(tar, "a") as tf:  # different content: each image has a layer of its own to delete
        info = tarfile.TarInfo("second.txt")
        tf.addfile(info, io.BytesIO(b""))
    docker(host, "import", str(tar), "rmi-del:b")
    d = docker(host, "rmi", "rmi-del:d", check=False)
    b = berth(host, "image", "rm", "rmi-del:b")
    assert b.returncode == d.returncode == 0
    shape = re.compile(r"sha256:[0-9a-f]{64}")
    assert shape.sub("ID", b.stdout.decode()).replace("rmi-del:b", "X") == \
        shape.sub("ID", d.stdout.decode()).replace("rmi-del:d", "X")
    assert b.stdout.decode().startswith("Untagged: rmi-del:b\nDeleted: sha256:")


@pytest.mark.parametrize("args", [["nope"], ["-f", "nope"], ["nope", "busybox:nope"], ["-f", "nope", "nope2"], []])
def test_rmi_errors_equal_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "rmi", *args, compare_stderr=bool(args))


def test_rmi_of_an_image_with_children_conflicts_like_docker(seeded_daemon: Daemon) -> None:
    layered_parent = docker(seeded_daemon.host, "image", "inspect", "--format", "{{.Parent}}",
                            "berth-layered:1").stdout.decode().strip()
    if not layered_parent:
        pytest.skip("the daemon loaded berth-layered:1 from an archive (no builder): it has no parent image")
    assert_same(seeded_daemon.host, "rmi", layered_parent)


# ---- save / load / import ------------------------------------------------------------------------------------

def _members(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return sorted(tf.getnames())


def _contents(path: Path) -> dict[str, bytes]:
    """Every entry's bytes, symlinks followed, manifest.json's images sorted: dockerd writes the images of one
    save in map order, and which of two images' shared layer is the file and which the symlink follows it."""
    with tarfile.open(path) as tf:
        members = {m.name: m for m in tf.getmembers()}

        def data(m: tarfile.TarInfo) -> bytes:
            for _ in range(10):
                if not m.issym():
                    break
                m = members[os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))]
            return tf.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]

        out = {name: data(m) for name, m in members.items()}
    if "manifest.json" in out:
        out["manifest.json"] = json.dumps(sorted(json.loads(out["manifest.json"]), key=lambda e: e["Config"])).encode()
    return out


def test_save_to_a_file_writes_what_docker_writes(seeded_daemon: Daemon, tmp_path: Path) -> None:
    host = seeded_daemon.host
    d_tar, b_tar = tmp_path / "d.tar", tmp_path / "b.tar"
    docker(host, "save", "-o", str(d_tar), "busybox", "berth-layered:1")
    b = berth(host, "save", "-o", str(b_tar), "busybox", "berth-layered:1")
    assert (b.returncode, b.stdout, b.stderr) == (0, b"", b"")
    assert _members(b_tar) == _members(d_tar)
    assert _contents(b_tar) == _contents(d_tar)  # dockerd stamps the tar's own entries with the current time
    assert (b_tar.stat().st_mode & 0o777) == (d_tar.stat().st_mode & 0o777) == 0o600


def test_save_to_stdout_streams_the_tar(seeded_daemon: Daemon, tmp_path: Path) -> None:
    out = tmp_path / "stdout.tar"
    with open(out, "wb") as f:
        b = berth(seeded_daemon.host, "image", "save", "busybox", stdout=f.fileno())
    assert b.returncode == 0
    assert "manifest.json" in _members(out)


def test_save_of_a_missing_image_fails_like_docker_and_leaves_no_file(seeded_daemon: Daemon, tmp_path: Path) -> None:
    host = seeded_daemon.host
    d = docker(host, "save", "-o", str(tmp_path / "d.tar"), "busybox", "nope", check=False)
    b = berth(host, "save", "-o", str(tmp_path / "b.tar"), "busybox", "nope")
    assert (b.returncode, _berth_err(b.stderr)) == (d.returncode, _docker_err(d.stderr))
    assert b.returncode == 1
    assert not (tmp_path / "b.tar").exists()
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_write_a_tar_to_a_terminal(seeded_daemon: Daemon) -> None:
    results = []
    for run in (lambda fd: docker_on_fd(seeded_daemon.host, fd), lambda fd: berth(seeded_daemon.host, "save",
                                                                                  "busybox", stdout=fd)):
        leader, follower = pty.openpty()
        try:
            proc = run(follower)
        finally:
            os.close(follower)
            os.close(leader)
        results.append((proc.returncode, proc.stderr.decode().replace("berth", "docker")))
    assert results[0] == results[1]
    assert results[1][0] == 1 and "cowardly refusing to save to a terminal" in results[1][1]


def docker_on_fd(host: str, fd: int) -> subprocess.CompletedProcess[bytes]:
    from tests.peers import DOCKER_CLI, _empty_docker_config
    return subprocess.run([DOCKER_CLI, "-H", host, "save", "busybox"], stdout=fd, stderr=subprocess.PIPE,
                          env={"PATH": os.environ["PATH"], "DOCKER_CONFIG": _empty_docker_config()})


@pytest.mark.parametrize("args", [[], ["-q"]])
def test_load_from_a_file_and_from_stdin_prints_what_docker_prints(seeded_daemon: Daemon, tmp_path: Path,
                                                                   args: list[str]) -> None:
    host = seeded_daemon.host
    tar = tmp_path / "bb.tar"
    docker(host, "save", "-o", str(tar), "busybox", "berth-layered:1")
    d = docker(host, "load", *args, "-i", str(tar), check=False)
    b = berth(host, "load", *args, "-i", str(tar))
    assert (b.returncode, b.stdout, b.stderr) == (d.returncode, d.stdout, d.stderr)
    assert b"Loaded image: busybox:latest" in b.stdout
    d = docker(host, "image", "load", *args, input=tar.read_bytes(), check=False)
    b = berth(host, "image", "load", *args, input=tar.read_bytes())
    assert (b.returncode, b.stdout, b.stderr) == (d.returncode, d.stdout, d.stderr)


@pytest.mark.parametrize("body", [b"", b"this is not a tar archive" * 100])
def test_load_of_bad_input_fails_like_docker(seeded_daemon: Daemon, body: bytes) -> None:
    d = docker(seeded_daemon.host, "load", input=body, check=False)
    b = berth(seeded_daemon.host, "load", input=body)
    assert (b.returncode, b.stdout) == (d.returncode, d.stdout)
    assert b.returncode != 0
    assert _berth_err(b.stderr) == _docker_err(d.stderr)


def test_load_of_a_missing_file_fails_like_docker(seeded_daemon: Daemon) -> None:
    assert_same(seeded_daemon.host, "load", "-i", "/nonexistent/x.tar")


def _inspect_masked(host: str, ref: str) -> dict[str, object]:
    data = json.loads(docker(host, "image", "inspect", ref).stdout)[0]
    for key in ("Id", "Created", "RepoTags", "Metadata", "GraphDriver"):
        data.pop(key, None)
    return data


@pytest.mark.parametrize("stdin", [False, True])
def test_import_makes_the_same_image_as_docker(seeded_daemon: Daemon, tmp_path: Path, stdin: bool) -> None:
    from tests.peers import busybox_rootfs_tar

    host = seeded_daemon.host
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(busybox_rootfs_tar())
    opts = ["-c", "ENV A=1", "--change", 'CMD ["sh", "-c", "echo hi"]', "-c", "WORKDIR /tmp", "-m", "from a test"]
    src = "-" if stdin else str(rootfs)
    data = rootfs.read_bytes() if stdin else None
    d = docker(host, "import", *opts, src, f"imp-d:{int(stdin)}", input=data, check=False)
    b = berth(host, "image", "import", *opts, src, f"imp-b:{int(stdin)}", input=data)
    assert b.returncode == d.returncode == 0, b.stderr
    assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", b.stdout), b.stdout
    assert b.stderr == d.stderr == b""
    assert _inspect_masked(host, f"imp-b:{int(stdin)}") == _inspect_masked(host, f"imp-d:{int(stdin)}")
    docker(host, "rmi", f"imp-d:{int(stdin)}", f"imp-b:{int(stdin)}")


@pytest.mark.parametrize("args", [["/nonexistent.tar"], ["/nonexistent.tar", "x:1"], [], ["a", "b", "c"]])
def test_import_errors_equal_dockers(seeded_daemon: Daemon, args: list[str]) -> None:
    assert_same(seeded_daemon.host, "import", *args, compare_stderr=bool(args) and len(args) < 3)


def test_import_with_an_invalid_reference_fails_like_docker(seeded_daemon: Daemon, tmp_path: Path) -> None:
    tar = tmp_path / "empty.tar"
    with tarfile.open(tar, "w"):
        pass
    d = docker(seeded_daemon.host, "import", str(tar), "Bad:Name", check=False)
    b = berth(seeded_daemon.host, "import", str(tar), "Bad:Name")
    assert b.returncode == d.returncode != 0
    assert _berth_err(b.stderr) == _docker_err(d.stderr)


# ---- prune / info / version ----------------------------------------------------------------------------------

def test_image_prune_reports_like_docker(seeded_daemon: Daemon) -> None:
    host = seeded_daemon.host
    docker(host, "image", "prune", "-f")  # whatever earlier tests left dangling
    d = docker(host, "image", "prune", "-f", check=False)  # now nothing is: both report 0B
    b = berth(host, "image", "prune", "-f")
    assert (b.returncode, b.stdout, b.stderr) == (d.returncode, d.stdout, d.stderr)
    assert b.stdout == b"Total reclaimed space: 0B\n"


def test_image_prune_without_force_asks_and_respects_no(seeded_daemon: Daemon) -> None:
    b = berth(seeded_daemon.host, "image", "prune", input=b"n\n")
    assert b.returncode == 0
    assert b.stdout.decode().startswith("WARNING! This will remove all dangling images.")


@pytest.mark.parametrize("fmt", ["{{.ServerVersion}}", "{{.Images}} {{.Driver}}", "{{json .Plugins}}",
                                 "{{.OSType}}/{{.Architecture}}", "{{.Nope}}"])
def test_info_format_equals_dockers(seeded_daemon: Daemon, fmt: str) -> None:
    assert_same(seeded_daemon.host, "info", "--format", fmt)


@pytest.mark.parametrize("fmt", ["{{.Server.Version}}", "{{.Server.APIVersion}} {{.Server.Os}}",
                                 "{{json .Server.Components}}"])
def test_version_server_fields_equal_dockers(seeded_daemon: Daemon, fmt: str) -> None:
    assert_same(seeded_daemon.host, "version", "--format", fmt)


def test_unreachable_daemon_fails_like_docker(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/nobody.sock"
    d = docker(host, "images", check=False)
    b = berth(host, "images")
    assert (b.returncode, _berth_err(b.stderr)) == (d.returncode, _docker_err(d.stderr))


@pytest.mark.parametrize("target", ["/nonexistent/x.tar", "/tmp", "/etc/passwd/x", "/dev/null"])
def test_save_refuses_the_output_paths_docker_refuses(seeded_daemon: Daemon, target: str) -> None:
    assert_same(seeded_daemon.host, "save", "-o", target, "busybox")


def test_save_replaces_an_existing_file_atomically(seeded_daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "old.tar"
    target.write_bytes(b"previous content")
    b = berth(seeded_daemon.host, "save", "-o", str(target), "busybox")
    assert b.returncode == 0, b.stderr
    assert "manifest.json" in _members(target)
    assert [p.name for p in tmp_path.iterdir()] == ["old.tar"]  # no temp file left beside it


def test_load_refuses_a_terminal_on_stdin(seeded_daemon: Daemon) -> None:
    from tests.peers import DOCKER_CLI, _empty_docker_config

    results = []
    for cmd in ([DOCKER_CLI, "-H", seeded_daemon.host, "load"],
                [sys.executable, "-m", "berth.cli.main", "-H", seeded_daemon.host, "load"]):
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(cmd, stdin=follower, capture_output=True, timeout=30,
                                  env={**os.environ, "DOCKER_CONFIG": _empty_docker_config()})
        finally:
            os.close(follower)
            os.close(leader)
        results.append((proc.returncode, proc.stderr.decode()))
    assert results[0] == results[1] == (1, "requested load from stdin, but stdin is empty\n")


def _server_section(text: str) -> list[str]:
    lines = text.split("\n")
    body = lines[lines.index("Server:"):]
    # docker lists runtimes in Go map order (random): compare them as a set
    return [(" Runtimes: " + " ".join(sorted(x.split()[1:]))) if x.startswith(" Runtimes:") else x for x in body]


def test_info_server_section_equals_dockers(seeded_daemon: Daemon) -> None:
    d = docker(seeded_daemon.host, "info", check=False)
    b = berth(seeded_daemon.host, "info")
    assert b.returncode == d.returncode == 0
    assert _server_section(b.stdout.decode()) == _server_section(d.stdout.decode())
    assert b.stderr == d.stderr


def test_version_server_section_equals_dockers(seeded_daemon: Daemon) -> None:
    d = docker(seeded_daemon.host, "version").stdout.decode()
    b = berth(seeded_daemon.host, "version").stdout.decode()
    assert b[b.index("\nServer:"):] == d[d.index("\nServer:"):]


def test_image_prune_lists_what_it_deleted_like_docker(seeded_daemon: Daemon, tmp_path: Path) -> None:
    host = seeded_daemon.host
    outputs = []
    for who in ("docker", "berth"):
        tar = tmp_path / f"{who}.tar"
        with tarfile.open(tar, "w") as tf:
            info = tarfile.TarInfo(f"{who}.txt")
            tf.addfile(info, io.BytesIO(b""))
        docker(host, "import", str(tar))  # untagged: one dangling image of its own
        run = docker if who == "docker" else berth
        proc = run(host, "image", "prune", "-f")
        outputs.append((proc.returncode, re.sub(r"sha256:[0-9a-f]{64}", "ID", proc.stdout.decode()), proc.stderr))
    assert outputs[0] == outputs[1]
    assert outputs[1][1].startswith("Deleted Images:\ndeleted: ID\n")
