"""The container's filesystem: the spec's mounts, pivot_root, masked and read-only paths.

`plan_mount` is pure (options -> flags, data, propagation). The appliers run in the container's init, in its new
mount namespace: every target is created and opened inside the rootfs with openat2(RESOLVE_IN_ROOT), a target whose
last component is a symlink is refused, and mounts are made onto /proc/self/fd/N of the opened target, so no symlink
(planted before or raced during setup) can send a mount out of the rootfs.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import os
import stat

from berth.errors import InvalidArgument, UnsafePath
from berth.oci.record import record
from berth.oci.spec import Mount
from berth.util import linux

# option -> (clear, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, linux.MS_SYNCHRONOUS), "atime": (True, linux.MS_NOATIME), "bind": (False, linux.MS_BIND),
    "defaults": (False, 0), "dev": (True, linux.MS_NODEV), "diratime": (True, linux.MS_NODIRATIME),
    "dirsync": (False, linux.MS_DIRSYNC), "exec": (True, linux.MS_NOEXEC), "mand": (False, linux.MS_MANDLOCK),
    "noatime": (False, linux.MS_NOATIME), "nodev": (False, linux.MS_NODEV),
    "nodiratime": (False, linux.MS_NODIRATIME), "noexec": (False, linux.MS_NOEXEC),
    "nomand": (True, linux.MS_MANDLOCK), "norelatime": (True, linux.MS_RELATIME),
    "nostrictatime": (True, linux.MS_STRICTATIME), "nosuid": (False, linux.MS_NOSUID),
    "nosymfollow": (False, linux.MS_NOSYMFOLLOW), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "relatime": (False, linux.MS_RELATIME), "remount": (False, linux.MS_REMOUNT), "ro": (False, linux.MS_RDONLY),
    "rw": (True, linux.MS_RDONLY), "strictatime": (False, linux.MS_STRICTATIME), "suid": (True, linux.MS_NOSUID),
    "sync": (False, linux.MS_SYNCHRONOUS),
}
PROPAGATION = {
    "private": linux.MS_PRIVATE, "shared": linux.MS_SHARED, "slave": linux.MS_SLAVE,
    "unbindable": linux.MS_UNBINDABLE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "rshared": linux.MS_SHARED | linux.MS_REC, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
# flags that a bind mount only gets through a second, remounting call
_REMOUNT_FLAGS = (linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_NOATIME
                  | linux.MS_NODIRATIME | linux.MS_RELATIME | linux.MS_STRICTATIME | linux.MS_NOSYMFOLLOW)


@record
class MountPlan:
    """One spec mount, resolved: what the init does for it."""
    destination: str
    fstype: str  # "bind" for bind mounts
    source: str
    flags: int
    data: str
    propagation: tuple[int, ...]
    source_is_dir: bool = True

    @property
    def is_bind(self) -> bool:
        return self.fstype == "bind"


def parse_options(options: tuple[str, ...]) -> tuple[int, str, tuple[int, ...]]:
    """(flags, data, propagation flags) from a spec mount's options."""
    flags, data, prop = 0, [], []
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            prop.append(PROPAGATION[opt])
        elif opt == "tmpcopyup":
            raise InvalidArgument("mount option tmpcopyup is not supported by berth-runtime")
        else:
            data.append(opt)
    return flags, ",".join(data), tuple(prop)


def known_filesystems() -> set[str]:
    with open("/proc/filesystems", "rb") as f:
        return {line.split()[-1] for line in f.read().decode().splitlines() if line.strip()}


def plan_mount(m: Mount, bundle: str, filesystems: set[str]) -> MountPlan:
    """Check a spec mount against the host before anything is created (unknown type, missing bind source)."""
    flags, data, prop = parse_options(m.options)
    if m.is_bind:
        if not m.source:
            raise InvalidArgument(f"bind mount {m.destination} has no source")
        source = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
        try:
            st = os.stat(source)
        except OSError as exc:
            raise InvalidArgument(f"bind mount source {source} for {m.destination}: {exc.strerror}") from exc
        return MountPlan(m.destination, "bind", source, flags | linux.MS_BIND, data, prop, stat.S_ISDIR(st.st_mode))
    fstype = m.type or ""
    if not fstype or fstype == "none":
        raise InvalidArgument(f"mount {m.destination} has no type (and is not a bind mount)")
    if fstype not in filesystems:
        raise InvalidArgument(f"mount {m.destination}: unknown filesystem type {fstype!r} "
                              "(not in /proc/filesystems)")
    return MountPlan(m.destination, fstype, m.source or fstype, flags, data, prop)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS


def mkdirs_in_root(root_fd: int, path: str) -> int:
    """Open (creating as needed, mode 0755) the directory path inside root; symlinks resolve inside the root.
    Returns an O_PATH fd."""
    rel = path.strip("/")
    if not rel:
        return os.dup(root_fd)
    parts = [p for p in rel.split("/") if p and p != "."]
    cur = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            try:
                nxt = linux.openat2(root_fd, prefix, os.O_PATH | os.O_DIRECTORY, _IN_ROOT)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=cur)
                except FileExistsError as exc:
                    raise UnsafePath(f"cannot create directory /{prefix} in the rootfs: a dangling symlink or "
                                     "other file is in the way") from exc
                nxt = linux.openat2(root_fd, prefix, os.O_PATH | os.O_DIRECTORY, _IN_ROOT)
            except NotADirectoryError as exc:
                raise UnsafePath(f"/{prefix} in the rootfs is not a directory") from exc
            os.close(cur)
            cur = nxt
    except BaseException:
        os.close(cur)
        raise
    return cur


def open_target(root_fd: int, destination: str, *, directory: bool, create: bool = True) -> int:
    """An O_PATH fd of destination inside root, created if missing; refuses a destination that is a symlink."""
    parent, _, name = destination.rstrip("/").rpartition("/")
    if not name:
        return os.dup(root_fd)
    pfd = mkdirs_in_root(root_fd, parent)
    try:
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        except FileNotFoundError:
            if not create:
                raise
            if directory:
                os.mkdir(name, 0o755, dir_fd=pfd)
            else:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                                 dir_fd=pfd))
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    finally:
        os.close(pfd)
    st = os.fstat(fd)
    if stat.S_ISLNK(st.st_mode):
        os.close(fd)
        raise UnsafePath(f"mount destination {destination} is a symlink in the rootfs; refusing to follow it")
    if directory and not stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise UnsafePath(f"mount destination {destination} is not a directory")
    return fd


def reopen(root_fd: int, destination: str) -> int:
    """The fd of what is mounted at destination now (an fd taken before the mount names the covered inode)."""
    return linux.openat2(root_fd, destination.strip("/") or ".", os.O_PATH | os.O_NOFOLLOW, _IN_ROOT)


def apply_mount(root_fd: int, plan: MountPlan) -> None:
    fd = open_target(root_fd, plan.destination, directory=plan.source_is_dir)
    try:
        if plan.is_bind:
            linux.mount(plan.source, fd_path(fd), None, plan.flags & (linux.MS_BIND | linux.MS_REC))
        else:
            linux.mount(plan.source, fd_path(fd), plan.fstype, plan.flags, plan.data or None)
    finally:
        os.close(fd)
    if plan.is_bind and plan.flags & _REMOUNT_FLAGS:
        remount(root_fd, plan.destination, plan.flags & _REMOUNT_FLAGS)
    for prop in plan.propagation:
        fd = reopen(root_fd, plan.destination)
        try:
            linux.mount("", fd_path(fd), None, prop)
        finally:
            os.close(fd)


def remount(root_fd: int, destination: str, flags: int) -> None:
    fd = reopen(root_fd, destination)
    try:
        path = fd_path(fd)
        try:
            linux.mount("", path, None, linux.MS_BIND | linux.MS_REMOUNT | flags)
        except PermissionError:
            # inside a user namespace, flags the mount already has (nodev, nosuid...) are locked: keep them
            linux.mount("", path, None, linux.MS_BIND | linux.MS_REMOUNT | flags | _locked_flags(path))
    finally:
        os.close(fd)


def _locked_flags(path: str) -> int:
    f = os.statvfs(path).f_flag
    out = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, linux.MS_NOSUID), (os.ST_NODEV, linux.MS_NODEV),
                             (os.ST_NOEXEC, linux.MS_NOEXEC), (os.ST_RDONLY, linux.MS_RDONLY),
                             (os.ST_NOATIME, linux.MS_NOATIME), (os.ST_NODIRATIME, linux.MS_NODIRATIME),
                             (os.ST_RELATIME, linux.MS_RELATIME)):
        if f & st_flag:
            out |= ms_flag
    return out


def prepare_root(rootfs: str, propagation: str | None) -> None:
    """In the new mount namespace: stop mounts propagating to the host, and make the rootfs a mount point."""
    linux.mount("", "/", None, PROPAGATION[propagation] if propagation else linux.MS_SLAVE | linux.MS_REC)
    # pivot_root refuses a new root whose parent mount is shared (rootfsPropagation "shared" makes it so)
    linux.mount("", _mount_point_of(rootfs), None, linux.MS_PRIVATE)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)


def _mount_point_of(path: str) -> str:
    """The mount point under which path lies (the longest mount point that is a prefix of it)."""
    best = "/"
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f.read().decode().splitlines():
            point = line.split(" ", 5)[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best = point
    return best


def set_root_propagation(propagation: str | None) -> None:
    """After pivot_root: the spec's rootfsPropagation on the container's own root (runc does the same)."""
    if propagation is not None:
        linux.mount("", "/", None, PROPAGATION[propagation])


def pivot(rootfs: str) -> None:
    """pivot_root into rootfs and detach the old root (runc's pivot_root(".", ".") trick: no directory needed)."""
    os.chdir(rootfs)
    linux.pivot_root(".", ".")
    # the old root is stacked under "."; make it a slave first so the unmount cannot propagate to the host
    linux.mount("", ".", None, linux.MS_SLAVE | linux.MS_REC)
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")


def mask_path(path: str) -> None:
    """After pivot_root: hide a file behind /dev/null and a directory behind an empty read-only tmpfs."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"masked path {path} is a symlink; refusing to mask through it")
        if stat.S_ISDIR(st.st_mode):
            linux.mount("tmpfs", fd_path(fd), "tmpfs", linux.MS_RDONLY)
        else:
            linux.mount("/dev/null", fd_path(fd), None, linux.MS_BIND)
    finally:
        os.close(fd)


def readonly_path(path: str) -> None:
    """After pivot_root: bind the path onto itself and make that read-only."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise UnsafePath(f"read-only path {path} is a symlink; refusing to follow it")
        linux.mount(fd_path(fd), fd_path(fd), None, linux.MS_BIND | linux.MS_REC)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC
        try:
            linux.mount("", fd_path(fd), None, flags)
        except PermissionError:
            linux.mount("", fd_path(fd), None, flags | _locked_flags(fd_path(fd)))
    finally:
        os.close(fd)


def readonly_root() -> None:
    try:
        linux.mount("", "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
    except PermissionError:
        linux.mount("", "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | _locked_flags("/"))
