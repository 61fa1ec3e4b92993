"""Bad bundles and images: a clear error (exit 1, the reason on stderr, like runc) and nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.conftest import Bundles, Runtime, container_id

pytestmark = pytest.mark.root


def processes_using(rootfs: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root").startswith(str(rootfs)):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def assert_refused(berth: Runtime, bundle: Path, cid: str, *needles: str) -> None:
    for command in (["create"], ["run"]):
        out = berth(*command, "--bundle", str(bundle), cid)
        assert out.returncode == 1, out
        for needle in needles:
            assert needle in out.stderr, (needle, out.stderr)
        assert not (berth.root / cid).exists(), "state directory left behind"
        assert berth.ids() == []
        rootfs = bundle / "rootfs"
        assert str(rootfs) not in Path("/proc/self/mountinfo").read_text(), "mount left behind"
        assert processes_using(rootfs) == [], "process left behind"


def test_a_missing_config_json(berth: Runtime, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert_refused(berth, tmp_path, container_id(request), "config.json does not exist")


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not valid JSON"),
    ("[]", "must be an object"),
    ('{"ociVersion": "1.0.2"}', "root is missing"),
    ('{"ociVersion": "0.9", "root": {"path": "rootfs"}}', "not a 1.x"),
])
def test_a_malformed_config_json(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest, text: str,
                                 needle: str) -> None:
    bundle = bundles.make(["true"])
    (bundle / "config.json").write_text(text)
    assert_refused(berth, bundle, container_id(request), needle)


def _mutated(bundles: Bundles, mutate: Any) -> Path:
    return bundles.make(["true"], mutate=mutate)


@pytest.mark.parametrize("mutate, needles", [
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), ["unknown namespace type 'bogus'"]),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "x"}),
     ["unknown filesystem type 'nosuchfs'"]),
    (lambda c: c["mounts"].append({"destination": "relative/x", "type": "tmpfs", "source": "tmpfs"}),
     ["'relative/x' is not an absolute path"]),
    (lambda c: c["mounts"].append({"destination": "/b", "type": "bind", "source": "/nonexistent/src",
                                   "options": ["rbind"]}), ["bind mount source /nonexistent/src", "No such file"]),
    (lambda c: c["root"].update(path="/nonexistent/rootfs"), ["rootfs (/nonexistent/rootfs) does not exist"]),
    (lambda c: c["linux"]["namespaces"].append({"type": "network", "path": "/nonexistent/netns"}),
     ["is listed twice"]),
    (lambda c: c["linux"].update(namespaces=[{"type": "pid"}, {"type": "mount"},
                                             {"type": "network", "path": "/nonexistent/netns"}]),
     ["network namespace path /nonexistent/netns does not exist"]),
    (lambda c: c["linux"].update(sysctl={"kernel.panic": "1"}), ["not in a separate kernel namespace"]),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
     ["unknown rlimit type RLIMIT_BOGUS"]),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_SYS_RESOURCE"),
     ["cannot grant capabilities", "CAP_SYS_RESOURCE"]),
    (lambda c: c["process"].update(args=[]), ["process.args"]),
    (lambda c: c["process"].update(args=["/no/such/program"]), ["/no/such/program", "no such file or directory"]),
    (lambda c: c["process"].update(args=["nosuchprogram"]), ["executable file not found in $PATH"]),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_EXPLODE"}), ["unknown seccomp default action"]),
], ids=["namespace", "fstype", "relative-dest", "bind-source", "rootfs", "duplicate-ns", "ns-path", "sysctl",
        "rlimit", "capability", "no-args", "missing-program", "not-in-path", "seccomp-action"])
def test_a_bad_spec_is_refused_with_a_clear_error(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest,
                                                  mutate: Any, needles: list[str]) -> None:
    assert_refused(berth, _mutated(bundles, mutate), container_id(request), *needles)


@pytest.mark.parametrize("victim", ["proc", "dev", "sys"])
def test_an_image_whose_special_directory_is_a_symlink_is_refused(berth: Runtime, bundles: Bundles, tmp_path: Path,
                                                                  request: pytest.FixtureRequest,
                                                                  victim: str) -> None:
    bundle = bundles.make(["true"])
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    (bundle / "rootfs" / victim).rmdir()
    (bundle / "rootfs" / victim).symlink_to(str(host_dir))
    assert_refused(berth, bundle, container_id(request), f"/{victim} is a symlink")
    assert list(host_dir.iterdir()) == [], "nothing may be created through the symlink"


def test_a_mount_destination_that_is_a_symlink_out_of_the_rootfs_is_refused(
        berth: Runtime, bundles: Bundles, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    src = tmp_path / "src"
    src.mkdir()
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()

    def mount(c: dict[str, Any]) -> None:
        c["mounts"].append({"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind"]})

    bundle = bundles.make(["true"], mutate=mount)
    (bundle / "rootfs" / "data").symlink_to(str(host_dir))
    assert_refused(berth, bundle, container_id(request), "/data is a symlink")


def test_an_intermediate_symlink_is_resolved_inside_the_rootfs(berth: Runtime, bundles: Bundles, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    """/var/run -> /run style links stay usable, but an absolute link resolves inside the rootfs, never the host."""
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()

    def mount(c: dict[str, Any]) -> None:
        c["mounts"].append({"destination": "/link/inner", "type": "tmpfs", "source": "tmpfs"})
        c["process"]["args"] = ["sh", "-c", f"grep -c ' {host_dir}/inner ' /proc/self/mountinfo"]

    bundle = bundles.make([], mutate=mount)
    (bundle / "rootfs" / str(host_dir).lstrip("/")).mkdir(parents=True)
    (bundle / "rootfs" / "link").symlink_to(str(host_dir))  # absolute: inside the container, <rootfs><host_dir>
    out = berth("run", "-b", str(bundle), container_id(request))
    assert (out.returncode, out.stdout) == (0, "1\n"), out.stderr
    assert list(host_dir.iterdir()) == [], "the host directory must stay untouched"
    assert (bundle / "rootfs" / str(host_dir).lstrip("/") / "inner").is_dir()


def test_a_dangling_intermediate_symlink_is_refused(berth: Runtime, bundles: Bundles, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    def mount(c: dict[str, Any]) -> None:
        c["mounts"].append({"destination": "/link/inner", "type": "tmpfs", "source": "tmpfs"})

    bundle = bundles.make(["true"], mutate=mount)
    (bundle / "rootfs" / "link").symlink_to(str(tmp_path / "host-target"))
    assert_refused(berth, bundle, container_id(request), "cannot create directory /link")
    assert not (tmp_path / "host-target").exists()


def test_a_masked_path_that_is_a_symlink_is_refused(berth: Runtime, bundles: Bundles, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    def mask(c: dict[str, Any]) -> None:
        c["linux"]["maskedPaths"] = ["/etc/secret"]

    bundle = bundles.make(["true"], mutate=mask)
    (bundle / "rootfs" / "etc" / "secret").symlink_to("/etc/passwd")
    assert_refused(berth, bundle, container_id(request), "masked path /etc/secret is a symlink")


def test_exec_as_a_user_the_rootfs_does_not_know(berth: Runtime, bundles: Bundles,
                                                 request: pytest.FixtureRequest) -> None:
    cid = container_id(request)
    berth("run", "-d", "-b", str(bundles.make(["sleep", "100"])), cid, check=True)
    out = berth("exec", "--user", "ghost", cid, "id")
    assert out.returncode == 1 and "unable to find user ghost" in out.stderr
    ok = berth("exec", "--user", "alice", cid, "id", "-u")
    assert ok.returncode == 0 and ok.stdout == "1000\n"


def test_the_working_directory_is_created_inside_the_rootfs(berth: Runtime, bundles: Bundles,
                                                            request: pytest.FixtureRequest) -> None:
    def cwd(c: dict[str, Any]) -> None:
        c["process"]["cwd"] = "/work/dir"
        c["process"]["args"] = ["pwd"]

    bundle = bundles.make([], mutate=cwd)
    out = berth("run", "-b", str(bundle), container_id(request))
    assert (out.returncode, out.stdout) == (0, "/work/dir\n")


def test_state_of_an_unknown_container(berth: Runtime) -> None:
    out = berth("state", "nosuch")
    assert out.returncode == 1 and "container nosuch does not exist" in out.stderr
    bad = berth("state", "../etc")
    assert bad.returncode == 1 and "invalid container id" in bad.stderr
    assert json.loads(berth("list", "--format", "json").stdout) == []


def test_bind_mount_options_are_applied(berth: Runtime, bundles: Bundles, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("x")

    def mounts(c: dict[str, Any]) -> None:
        c["mounts"] += [
            {"destination": "/ro", "type": "bind", "source": str(src), "options": ["rbind", "ro", "nosuid",
                                                                                 "noexec", "nodev", "rslave"]},
            {"destination": "/rw", "type": "bind", "source": str(src), "options": ["bind", "rw"]},
            {"destination": "/etc/hostsfile", "type": "bind", "source": str(src / "file"), "options": ["bind", "ro"]},
        ]
        c["process"]["args"] = ["sh", "-c", "grep -E ' /(ro|rw|etc/hostsfile) ' /proc/self/mountinfo | "
                                "cut -d' ' -f5,6,7; touch /ro/new 2>&1 | sed 's/.*: //'; touch /rw/new && echo rw-ok; "
                                "cat /etc/hostsfile"]

    out = berth("run", "-b", str(bundles.make([], mutate=mounts)), container_id(request))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # (rslave is applied too, but the host's mounts here are private, so there is no master to show)
    assert lines[0].split()[:2] == ["/ro", "ro,nosuid,nodev,noexec,relatime"]
    assert lines[1].split()[:2] == ["/rw", "rw,relatime"]
    assert lines[2].split()[:2] == ["/etc/hostsfile", "ro,relatime"]
    assert lines[3:] == ["Read-only file system", "rw-ok", "x"]
    assert (src / "new").exists()


@pytest.mark.parametrize("propagation, shared", [("rshared", True), ("shared", True), ("rprivate", False),
                                                 ("rslave", False)])
def test_rootfs_propagation(berth: Runtime, bundles: Bundles, request: pytest.FixtureRequest, propagation: str,
                            shared: bool) -> None:
    def prop(c: dict[str, Any]) -> None:
        c["linux"]["rootfsPropagation"] = propagation
        c["process"]["args"] = ["awk", "$5 == \"/\"", "/proc/self/mountinfo"]

    out = berth("run", "-b", str(bundles.make([], mutate=prop)), container_id(request))
    assert out.returncode == 0 and out.stdout.count("\n") == 1, out
    assert ("shared:" in out.stdout) is shared, out.stdout
