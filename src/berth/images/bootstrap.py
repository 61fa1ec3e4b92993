"""Offline base images: root filesystem directories made from what this machine has.

`busybox_rootfs` copies the host's static busybox (Debian busybox-static) and links every applet;
`debian_rootfs` runs mmdebstrap against the apt mirror this machine's own sources already use.
Each returns a RootfsSpec (the directory and its default container config); turning the directory
into an image (layer tar, config, manifest) is the image store's job.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from berth.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure, Unavailable
from berth.oci.config import ContainerConfig
from berth.oci.descriptor import Platform
from berth.util import linux

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = Path("/bin/busybox")
PT_INTERP = 3


@dataclass(frozen=True, slots=True)
class RootfsSpec:
    """A finished root filesystem and the defaults an image made from it should carry."""

    path: Path
    config: ContainerConfig
    platform: Platform = field(default_factory=Platform.host)
    comment: str = ""


# -- the destination --------------------------------------------------------------------------------------


@contextmanager
def _fresh_dest(dest: Path) -> Iterator[None]:
    """dest must be missing or an empty directory; on failure everything made inside it is removed."""
    created = False
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise InvalidArgument(f"root filesystem destination {dest} exists and is not a directory")
    if dest.exists():
        if any(dest.iterdir()):
            raise InvalidArgument(f"root filesystem destination {dest} is not empty; choose an empty or new directory")
    else:
        dest.mkdir(parents=True, mode=0o755)
        created = True
    try:
        yield
    except BaseException:
        _clear(dest)
        if created:
            dest.rmdir()
        raise


_OCTAL = re.compile(r"\\([0-7]{3})")


def _mounts_below(path: Path) -> list[str]:
    """Mount points at or under path (from /proc/self/mountinfo), deepest first."""
    real = os.path.realpath(path)
    found: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _OCTAL.sub(lambda m: chr(int(m[1], 8)), line.split()[4])  # \040 is a space
            if point == real or point.startswith(real.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _clear(dest: Path) -> None:
    """Remove everything inside dest, never following a mount out of it (a bind of the host's /dev!)."""
    for point in _mounts_below(dest):
        linux.umount(point, linux.MNT_DETACH)
    if _mounts_below(dest):
        raise RuntimeFailure(f"cannot clean {dest}: something is still mounted under it")
    for entry in list(dest.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# -- busybox ----------------------------------------------------------------------------------------------


PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
nobody:x:65534:
"""

_APPLET_PATH = re.compile(r"(?:usr/)?s?bin/[^/\0]+")


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP), i.e. statically linked."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            return False
        order = "<" if head[5] == 1 else ">"
        if head[4] == 2:  # ELFCLASS64
            (phoff,), (phentsize, phnum) = struct.unpack_from(order + "Q", head, 32), \
                struct.unpack_from(order + "HH", head, 54)
        else:
            (phoff,), (phentsize, phnum) = struct.unpack_from(order + "I", head, 28), \
                struct.unpack_from(order + "HH", head, 42)
        if phentsize < 4:
            return False
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    types = (struct.unpack_from(order + "I", table, i * phentsize)[0] for i in range(len(table) // phentsize))
    return all(t != PT_INTERP for t in types)


def busybox_applets(busybox: Path) -> list[PurePosixPath]:
    """The applet paths busybox reports (`--list-full`: bin/sh, usr/bin/wget, ...), checked to stay in /bin-like dirs."""
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeFailure(f"{busybox} --list-full failed: {proc.stderr.strip()[-500:]}")
    out: list[PurePosixPath] = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line or line == "linuxrc":  # the initrd entry point: no use in a container image
            continue
        if not _APPLET_PATH.fullmatch(line) or line.endswith(("/.", "/..")):
            raise RuntimeFailure(f"{busybox} --list-full reported an unexpected applet path {line!r}")
        out.append(PurePosixPath(line))
    if PurePosixPath("bin/sh") not in out:
        raise RuntimeFailure(f"{busybox} has no sh applet; it cannot be a base image")
    return out


def busybox_rootfs(dest: Path, busybox: Path = BUSYBOX) -> RootfsSpec:
    """A busybox root filesystem in dest (missing or empty): the binary, a hardlink per applet, /etc basics."""
    if not busybox.is_file():
        raise NotFound(f"{busybox} not found: install Debian's static busybox with 'apt-get install busybox-static'")
    if not is_static_elf(busybox):
        raise InvalidArgument(f"{busybox} is not a statically linked ELF executable (Debian's 'busybox' package "
                              "is dynamic); install the static one with 'apt-get install busybox-static'")
    applets = busybox_applets(busybox)
    with _fresh_dest(dest):
        for d, mode in (("bin", 0o755), ("sbin", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755),
                        ("etc", 0o755), ("home", 0o755), ("root", 0o700), ("tmp", 0o1777),
                        ("var/spool/mail", 0o755), ("var/www", 0o755), ("dev", 0o755), ("proc", 0o555),
                        ("sys", 0o555)):
            (dest / d).mkdir(parents=True, exist_ok=True)
            os.chmod(dest / d, mode)  # mkdir's mode is masked by the umask; 1777 and 0700 must be exact
        binary = dest / "bin" / "busybox"
        shutil.copyfile(busybox, binary)
        os.chmod(binary, 0o755)
        for applet in applets:
            target = dest / applet
            if target == binary:
                continue
            os.link(binary, target)  # hardlinks, as the official busybox image has: one inode in the layer
        _write(dest / "etc" / "passwd", PASSWD, 0o644)
        _write(dest / "etc" / "group", GROUP, 0o644)
        # every timestamp from the binary's: the same busybox gives the same layer, and the same image ID
        _set_times(dest, os.stat(busybox).st_mtime)
    config = ContainerConfig(env=(DEFAULT_PATH,), cmd=("sh",))
    return RootfsSpec(dest, config, comment=f"busybox root filesystem from {busybox}")


def _set_times(root: Path, when: float) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    os.utime(root, (when, when))


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    os.chmod(path, mode)


# -- Debian -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AptSource:
    """One `deb` source of the host, from a one-line or a deb822 sources file."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DebianMirrors:
    archive: str
    security: str | None


_DEBIAN_CODENAMES = frozenset({"sid", "unstable", "testing", "stable", "oldstable", "oldoldstable", "experimental",
                               "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke"})
_SUITE = re.compile(r"[a-z][a-z0-9.-]{0,39}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?")
VARIANTS = ("minbase", "buildd", "required", "important", "standard", "apt")


def parse_one_line_sources(text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options such as [signed-by=...] are not needed here
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            out.append(AptSource(words[1], (words[2],), tuple(words[3:])))
    return out


def parse_deb822_sources(text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += " " + raw.strip()  # continuation line
                continue
            key, sep, value = raw.partition(":")
            if not sep:
                key = ""
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(AptSource(uri, tuple(fields.get("suites", "").split()),
                                 tuple(fields.get("components", "").split())))
    return out


def host_apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    sources: list[AptSource] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        sources += parse_one_line_sources(main.read_text())
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for p in sorted(parts.iterdir()):
            if p.suffix == ".list":
                sources += parse_one_line_sources(p.read_text())
            elif p.suffix == ".sources":
                sources += parse_deb822_sources(p.read_text())
    return sources


def _base_suite(suite: str) -> str:
    return re.split(r"[-/]", suite, maxsplit=1)[0]


def debian_mirrors(sources: Sequence[AptSource]) -> DebianMirrors:
    """The host's Debian archive URI (and its security archive, if it has one), among all its sources."""
    archive = security = None
    for src in sources:
        for suite in src.suites:
            if _base_suite(suite) not in _DEBIAN_CODENAMES or "main" not in src.components:
                continue
            if suite.endswith("-security") or suite.endswith("/updates"):
                security = security or src.uri
            else:
                archive = archive or src.uri
    if archive is None:
        raise NotFound("no Debian archive among this machine's apt sources (/etc/apt/sources.list, "
                       "/etc/apt/sources.list.d/*.list and *.sources): add one, e.g. a deb822 stanza with "
                       "'URIs: <your Debian mirror>' and 'Components: main'")
    return DebianMirrors(archive.rstrip("/"), security.rstrip("/") if security else None)


def mirror_lines(suite: str, mirrors: DebianMirrors) -> list[str]:
    """The sources an image of suite gets: the archive, its -updates and its security suite when it has them."""
    lines = [f"deb {mirrors.archive} {suite} main"]
    if suite not in ("sid", "unstable", "experimental"):
        lines.append(f"deb {mirrors.archive} {suite}-updates main")
        if mirrors.security:
            lines.append(f"deb {mirrors.security} {suite}-security main")
    return lines


def _host_apt_options() -> list[str]:
    """Options of this machine's apt that its mirror needs (a snapshot mirror's expired Valid-Until, a proxy)."""
    proc = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return []
    wanted = re.compile(r'(Acquire::Check-Valid-Until|Acquire::Check-Date|Acquire::https?::Proxy(?:::[^ ]+)?) "(.*)";')
    return [f'{m[1]} "{m[2]}"' for m in map(wanted.fullmatch, proc.stdout.splitlines()) if m]


# The files Debian's official container image adds so that apt leaves no caches in layers (our own words).
_APT_CONFIG = {
    "etc/apt/apt.conf.d/docker-clean": (
        '// keep image layers small: drop downloaded packages and apt\'s binary caches after every run\n'
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    "etc/apt/apt.conf.d/docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'APT::AutoRemove::SuggestsImportant "false";\n',
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "# a container's files need no fsync per package\nforce-unsafe-io\n",
}


DEBOOTSTRAP_VARIANTS = ("minbase", "buildd")


def debian_rootfs(dest: Path, suite: str = "bookworm", variant: str = "minbase", include: Sequence[str] = (),
                  apt_dir: Path = Path("/etc/apt"), timeout: float = 1800, tool: str | None = None) -> RootfsSpec:
    """A Debian root filesystem in dest (missing or empty), built from this host's Debian mirror.

    tool is "mmdebstrap" (the default when installed: several mirrors at once, so security updates
    are in) or "debootstrap" (one mirror; the image's sources still list -updates and -security).
    """
    if not _SUITE.fullmatch(suite):
        raise InvalidArgument(f"invalid Debian suite {suite!r}: expected a codename such as bookworm")
    for pkg in include:
        if not _PACKAGE.fullmatch(pkg):
            raise InvalidArgument(f"invalid Debian package name {pkg!r}")
    tool = tool or ("mmdebstrap" if shutil.which("mmdebstrap") or not shutil.which("debootstrap") else "debootstrap")
    if tool not in ("mmdebstrap", "debootstrap"):
        raise InvalidArgument(f"unknown bootstrap tool {tool!r}: choose mmdebstrap or debootstrap")
    allowed = VARIANTS if tool == "mmdebstrap" else DEBOOTSTRAP_VARIANTS
    if variant not in allowed:
        raise InvalidArgument(f"unknown {tool} variant {variant!r}: choose one of {', '.join(allowed)}")
    binary = shutil.which(tool)
    if binary is None:
        raise NotFound(f"{tool} not found: install it with 'apt-get install {tool}'")
    if os.geteuid() != 0:
        raise InvalidArgument(f"building a Debian root filesystem needs root ({tool} chroots into it)")
    mirrors = debian_mirrors(host_apt_sources(apt_dir))
    apt_options = _host_apt_options()
    target = dest.absolute()
    if tool == "mmdebstrap":
        argv = mmdebstrap_argv(binary, suite, variant, include, target, mirrors, apt_options)
    else:
        argv = debootstrap_argv(binary, suite, variant, include, target, mirrors)
    with _fresh_dest(dest):
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C.UTF-8",
               "DEBIAN_FRONTEND": "noninteractive"}
        if "SOURCE_DATE_EPOCH" in os.environ:  # mmdebstrap then makes a reproducible tree
            env["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"{tool} building Debian {suite!r} took more than {timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise _bootstrap_error(tool, suite, mirrors, proc.stdout + proc.stderr)
        if tool == "debootstrap":
            # debootstrap fetched from one mirror; the image still gets the full set, and the apt
            # options this machine's mirror needs, as mmdebstrap writes them
            _write(dest / "etc/apt/sources.list", "\n".join(mirror_lines(suite, mirrors)) + "\n", 0o644)
            if apt_options:
                _write(dest / "etc/apt/apt.conf.d/99mirror", "".join(f"{o};\n" for o in apt_options), 0o644)
        _finish_debian(dest)
    config = ContainerConfig(env=(DEFAULT_PATH,), cmd=("bash",))
    return RootfsSpec(dest, config, comment=f"debian {suite} ({variant}) from {mirrors.archive} by {tool}")


def mmdebstrap_argv(binary: str, suite: str, variant: str, include: Sequence[str], dest: Path,
                    mirrors: DebianMirrors, apt_options: Sequence[str]) -> list[str]:
    argv = [binary, "--mode=root", f"--variant={variant}", "--format=directory"]
    argv += [f"--aptopt={opt}" for opt in apt_options]
    if include:
        argv.append("--include=" + ",".join(include))
    return [*argv, "--", suite, str(dest), *mirror_lines(suite, mirrors)]


def debootstrap_argv(binary: str, suite: str, variant: str, include: Sequence[str], dest: Path,
                     mirrors: DebianMirrors) -> list[str]:
    argv = [binary, f"--variant={variant}"]
    if include:
        argv.append("--include=" + ",".join(include))
    return [*argv, suite, str(dest), mirrors.archive]


def _bootstrap_error(tool: str, suite: str, mirrors: DebianMirrors, output: str) -> Exception:
    tail = "\n".join(output.strip().splitlines()[-8:])
    missing = (("Release" in output and re.search(r"does not have a Release file|404|Failed getting release", output))
               or "No such script" in output)
    if missing:
        return NotFound(f"Debian suite {suite!r} is not on the mirror {mirrors.archive}: {tail}")
    return RuntimeFailure(f"{tool} failed to build Debian {suite!r} from {mirrors.archive}: {tail}")


def _finish_debian(dest: Path) -> None:
    """Make the directory an image root: no device nodes, no host identity, apt set up as in containers."""
    if _mounts_below(dest):
        raise Conflict(f"mmdebstrap left mounts under {dest}; refusing to touch its /dev")
    dev = dest / "dev"
    for entry in list(dev.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for host_file in ("etc/resolv.conf", "etc/hostname"):  # the engine provides these per container
        (dest / host_file).unlink(missing_ok=True)
    for rel, text in _APT_CONFIG.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        _write(dest / rel, text, 0o644)
    policy = dest / "usr/sbin/policy-rc.d"  # a container starts no services when packages are installed
    _write(policy, "#!/bin/sh\nexit 101\n", 0o755)
    for cache in [*(dest / "var/cache/apt").glob("*.bin"), *(dest / "var/cache/apt/archives").glob("*.deb")]:
        cache.unlink()
    lists = dest / "var/lib/apt/lists"
    if lists.is_dir():
        for entry in lists.iterdir():
            if entry.is_file() and entry.name != "lock":
                entry.unlink()
