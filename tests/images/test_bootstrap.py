"""Offline base root filesystems: busybox from busybox-static, Debian from this machine's apt mirror."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from berth.errors import InvalidArgument, NotFound
from berth.images import bootstrap
from berth.images.bootstrap import (
    DEFAULT_PATH,
    AptSource,
    DebianMirrors,
    busybox_applets,
    busybox_rootfs,
    debian_mirrors,
    debian_rootfs,
    debootstrap_argv,
    host_apt_sources,
    is_static_elf,
    mirror_lines,
    mmdebstrap_argv,
    parse_deb822_sources,
    parse_one_line_sources,
)

needs_busybox = pytest.mark.skipif(not Path("/bin/busybox").is_file() or not is_static_elf(Path("/bin/busybox")),
                                   reason="needs Debian's busybox-static (/bin/busybox)")
needs_mmdebstrap = pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="needs mmdebstrap")
needs_debootstrap = pytest.mark.skipif(shutil.which("debootstrap") is None, reason="needs debootstrap")


def _chroot(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


# -- busybox ----------------------------------------------------------------------------------------------


@needs_busybox
def test_the_busybox_rootfs_has_every_applet_as_a_hardlink_of_one_binary(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    spec = busybox_rootfs(dest)
    assert spec.path == dest
    binary = os.stat(dest / "bin" / "busybox")
    assert stat.S_IMODE(binary.st_mode) == 0o755 and binary.st_size == os.stat("/bin/busybox").st_size
    applets = busybox_applets(Path("/bin/busybox"))
    assert len(applets) > 100
    for applet in applets:
        st = os.lstat(dest / applet)
        assert st.st_ino == binary.st_ino, applet
    assert binary.st_nlink == len(applets)  # bin/busybox itself is one of them, or one more name
    assert (dest / "bin" / "sh").exists() and (dest / "usr" / "bin" / "wget").exists()


@needs_busybox
def test_the_busybox_rootfs_has_the_base_directories_users_and_config(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    spec = busybox_rootfs(dest)
    modes = {d: stat.S_IMODE(os.stat(dest / d).st_mode) for d in ("tmp", "root", "etc", "home", "var/spool/mail")}
    assert modes == {"tmp": 0o1777, "root": 0o700, "etc": 0o755, "home": 0o755, "var/spool/mail": 0o755}
    assert stat.S_ISVTX & os.stat(dest / "tmp").st_mode
    for empty in ("dev", "proc", "sys"):
        assert (dest / empty).is_dir() and list((dest / empty).iterdir()) == []
    assert not (dest / "etc" / "hosts").exists()  # the engine writes it per container
    users = [line.split(":") for line in (dest / "etc" / "passwd").read_text().splitlines()]
    assert [(u[0], u[2], u[3]) for u in users] == [("root", "0", "0"), ("daemon", "1", "1"),
                                                   ("nobody", "65534", "65534")]
    groups = [line.split(":")[0] for line in (dest / "etc" / "group").read_text().splitlines()]
    assert groups == ["root", "daemon", "nobody"]
    assert spec.config.cmd == ("sh",)
    assert spec.config.env == (DEFAULT_PATH,)
    assert spec.platform.os == "linux" and spec.platform.architecture


@needs_busybox
@pytest.mark.root
def test_the_busybox_rootfs_runs_a_shell_in_a_chroot(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    busybox_rootfs(dest)
    proc = _chroot(dest, "busybox", "sh", "-c", "echo ok")
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    proc = _chroot(dest, "/bin/sh", "-c", "id -un; ls -d /tmp; ls /usr/bin/wget; wget --help 2>&1 | grep -c 'Usage: wget'")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["root", "/tmp", "/usr/bin/wget", "1"]


@needs_busybox
def test_a_busybox_rootfs_refuses_a_destination_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InvalidArgument) as err:
        busybox_rootfs(tmp_path)
    assert str(tmp_path) in str(err.value) and "not empty" in str(err.value)
    assert os.listdir(tmp_path) == ["keep.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgument):
        busybox_rootfs(tmp_path / "file")


def test_a_missing_busybox_names_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        busybox_rootfs(tmp_path / "rootfs", busybox=tmp_path / "no-busybox")
    assert "apt-get install busybox-static" in str(err.value)
    assert not (tmp_path / "rootfs").exists()


def test_a_dynamically_linked_busybox_is_refused(tmp_path: Path) -> None:
    dynamic = Path(shutil.which("ls") or "/bin/ls")
    assert not is_static_elf(dynamic)
    with pytest.raises(InvalidArgument) as err:
        busybox_rootfs(tmp_path / "rootfs", busybox=dynamic)
    assert "busybox-static" in str(err.value)
    assert not (tmp_path / "rootfs").exists()


def test_a_failure_midway_leaves_nothing_in_the_destination(tmp_path: Path) -> None:
    made = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with bootstrap._fresh_dest(made):
            (made / "etc").mkdir()
            (made / "etc" / "passwd").write_text("x")
            raise RuntimeError("disk full")
    assert not made.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        with bootstrap._fresh_dest(existing):
            (existing / "bin").mkdir()
            os.symlink("/etc", existing / "bin" / "escape")  # removing it must not follow it
            raise RuntimeError("killed")
    assert existing.is_dir() and os.listdir(existing) == []
    assert Path("/etc/passwd").exists()


# -- apt sources ------------------------------------------------------------------------------------------

ONE_LINE = """\
# the main archive
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian/ bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb http://security.example/debian-security bookworm-security main  # updates
"""

DEB822 = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main

Types: deb deb-src
# a snapshot comment
URIs: http://deb.example/debian
Suites: bookworm
 bookworm-updates
Components: main

Types: deb
URIs: http://old.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_one_line_sources_are_parsed_with_options_and_comments() -> None:
    assert parse_one_line_sources(ONE_LINE) == [
        AptSource("http://mirror.example/debian/", ("bookworm",), ("main", "contrib")),
        AptSource("https://packages.cloud.google.com/apt", ("cloud-sdk-bookworm",), ("main",)),
        AptSource("http://security.example/debian-security", ("bookworm-security",), ("main",)),
    ]
    assert debian_mirrors(parse_one_line_sources(ONE_LINE)) == DebianMirrors(
        "http://mirror.example/debian", "http://security.example/debian-security")


def test_deb822_sources_skip_disabled_stanzas_and_join_continuation_lines() -> None:
    sources = parse_deb822_sources(DEB822)
    assert [s.uri for s in sources] == ["https://deb.nodesource.com/node_20.x", "http://deb.example/debian",
                                        "http://deb.example/debian-security"]
    assert sources[1].suites == ("bookworm", "bookworm-updates")
    assert debian_mirrors(sources) == DebianMirrors("http://deb.example/debian",
                                                    "http://deb.example/debian-security")


def test_host_sources_read_both_formats_and_ignore_other_files(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "google.list.disabled").write_text("deb http://disabled.example/x y main\n")
    (tmp_path / "sources.list.d" / "extra.list").write_text("deb http://extra.example/debian sid main\n")
    uris = [s.uri for s in host_apt_sources(tmp_path)]
    assert "http://disabled.example/x" not in uris
    assert "http://extra.example/debian" in uris and "http://deb.example/debian" in uris


def test_no_debian_source_is_a_clear_error() -> None:
    with pytest.raises(NotFound) as err:
        debian_mirrors([AptSource("https://deb.nodesource.com/node_20.x", ("nodistro",), ("main",))])
    assert "sources.list" in str(err.value)


def test_an_image_gets_updates_and_security_only_where_the_suite_has_them() -> None:
    mirrors = DebianMirrors("http://m/debian", "http://m/debian-security")
    assert mirror_lines("bookworm", mirrors) == ["deb http://m/debian bookworm main",
                                                 "deb http://m/debian bookworm-updates main",
                                                 "deb http://m/debian-security bookworm-security main"]
    assert mirror_lines("sid", mirrors) == ["deb http://m/debian sid main"]
    assert mirror_lines("bookworm", DebianMirrors("http://m/debian", None))[-1].endswith("bookworm-updates main")


def test_this_machines_sources_have_a_debian_mirror() -> None:
    if not Path("/etc/apt/sources.list.d").is_dir():
        pytest.skip("not a Debian machine")
    mirrors = debian_mirrors(host_apt_sources())
    assert mirrors.archive.startswith(("http://", "https://", "file:/"))


# -- Debian -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"suite": "../etc"}, "suite"),
    ({"suite": "Bookworm; rm -rf /"}, "suite"),
    ({"variant": "everything"}, "variant"),
    ({"include": ["curl", "--evil"]}, "package"),
    ({"tool": "cdebootstrap"}, "tool"),
    ({"tool": "debootstrap", "variant": "standard"}, "variant"),
])
def test_bad_debian_arguments_are_refused_before_anything_is_made(tmp_path: Path, kwargs: dict[str, object],
                                                                  word: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        debian_rootfs(tmp_path / "rootfs", **kwargs)  # type: ignore[arg-type]
    assert word in str(err.value)
    assert not (tmp_path / "rootfs").exists()


@needs_mmdebstrap
@pytest.mark.root
def test_a_debian_rootfs_refuses_a_destination_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("")
    with pytest.raises(InvalidArgument) as err:
        debian_rootfs(tmp_path)
    assert str(tmp_path) in str(err.value)
    assert os.listdir(tmp_path) == ["keep"]


@needs_mmdebstrap
@pytest.mark.root
@pytest.mark.slow
def test_an_unknown_suite_is_named_in_the_error_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    with pytest.raises(NotFound) as err:
        debian_rootfs(dest, suite="nosuchsuite")
    assert "'nosuchsuite'" in str(err.value) and "Release" in str(err.value)
    assert not dest.exists()
    assert bootstrap._mounts_below(tmp_path) == []


@needs_mmdebstrap
@pytest.mark.root
@pytest.mark.slow
def test_a_debian_rootfs_has_apt_and_the_included_packages_and_runs_in_a_chroot(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    spec = debian_rootfs(dest, include=["hello"])
    try:
        assert (dest / "usr/bin/apt-get").is_file() and (dest / "etc/debian_version").read_text().startswith("12")
        proc = _chroot(dest, "/bin/true")
        assert proc.returncode == 0, proc.stderr
        proc = _chroot(dest, "/bin/bash", "-c", "dpkg-query -W -f '${Package}\\n' apt bash | sort")
        assert proc.stdout.split() == ["apt", "bash"], proc.stderr
        assert _chroot(dest, "/usr/bin/hello").stdout == "Hello, world!\n"  # the included package
        assert spec.config.cmd == ("bash",) and spec.config.env == (DEFAULT_PATH,)
        assert os.listdir(dest / "dev") == []  # the runtime makes /dev; the image carries no device nodes
        assert not (dest / "etc/resolv.conf").exists() and not (dest / "etc/hostname").exists()
        assert [p.name for p in (dest / "var/lib/apt/lists").iterdir() if p.is_file() and p.name != "lock"] == []
        assert list((dest / "var/cache/apt").glob("*.bin")) == []
        assert (dest / "etc/apt/apt.conf.d/docker-clean").is_file()
        mirrors = debian_mirrors(host_apt_sources())
        assert mirrors.archive in (dest / "etc/apt/sources.list").read_text()
        assert bootstrap._mounts_below(dest) == []
    finally:
        assert bootstrap._mounts_below(dest) == []


@needs_busybox
def test_the_same_busybox_gives_identical_trees(tmp_path: Path) -> None:
    def tree(root: Path) -> list[tuple[str, int, int, int]]:
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            for name in sorted(dirnames + filenames):
                st = os.lstat(os.path.join(dirpath, name))
                out.append((os.path.relpath(os.path.join(dirpath, name), root), st.st_mode, st.st_size,
                            st.st_mtime_ns))
        return sorted(out)

    busybox_rootfs(tmp_path / "a")
    busybox_rootfs(tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert os.stat(tmp_path / "a" / "etc" / "passwd").st_mtime == os.stat("/bin/busybox").st_mtime


def test_the_bootstrap_commands_carry_suite_variant_packages_and_mirrors(tmp_path: Path) -> None:
    mirrors = DebianMirrors("http://m/debian", "http://m/debian-security")
    argv = mmdebstrap_argv("mmdebstrap", "bookworm", "minbase", ["curl", "hello"], tmp_path, mirrors,
                           ['Acquire::Check-Valid-Until "false"'])
    assert argv == ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
                    '--aptopt=Acquire::Check-Valid-Until "false"', "--include=curl,hello", "--", "bookworm",
                    str(tmp_path), "deb http://m/debian bookworm main", "deb http://m/debian bookworm-updates main",
                    "deb http://m/debian-security bookworm-security main"]
    assert debootstrap_argv("debootstrap", "bookworm", "buildd", [], tmp_path, mirrors) == [
        "debootstrap", "--variant=buildd", "bookworm", str(tmp_path), "http://m/debian"]


@needs_debootstrap
@pytest.mark.root
def test_debootstrap_names_an_unknown_suite_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    with pytest.raises(NotFound) as err:
        debian_rootfs(dest, suite="nosuchsuite", tool="debootstrap")
    assert "'nosuchsuite'" in str(err.value)
    assert not dest.exists()


@needs_debootstrap
@pytest.mark.root
@pytest.mark.slow
def test_a_debootstrap_rootfs_is_cleaned_like_the_mmdebstrap_one(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    spec = debian_rootfs(dest, tool="debootstrap")
    try:
        assert (dest / "usr/bin/apt-get").is_file() and (dest / "etc/debian_version").is_file()
        assert _chroot(dest, "/bin/true").returncode == 0
        assert os.listdir(dest / "dev") == []
        assert list((dest / "var/cache/apt/archives").glob("*.deb")) == []
        assert "-security" in (dest / "etc/apt/sources.list").read_text()
        assert spec.config.cmd == ("bash",) and "debootstrap" in spec.comment
    finally:
        assert bootstrap._mounts_below(dest) == []
