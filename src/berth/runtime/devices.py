"""The container's /dev: the default device nodes, the spec's devices, the standard symlinks, and the console.

Runs in the init before pivot_root (nodes and links, relative to an fd of the rootfs' /dev) and after it (console).
In a user namespace mknod is not allowed: the host's node is bind-mounted onto an empty file instead, as runc does.
May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import termios

from berth.errors import UnsafePath
from berth.oci.spec import Device
from berth.runtime.mounts import fd_path, mkdirs_in_root
from berth.util import linux

DEFAULT_DEVICES = (
    Device("c", "/dev/null", 1, 3, 0o666, 0, 0), Device("c", "/dev/zero", 1, 5, 0o666, 0, 0),
    Device("c", "/dev/full", 1, 7, 0o666, 0, 0), Device("c", "/dev/random", 1, 8, 0o666, 0, 0),
    Device("c", "/dev/urandom", 1, 9, 0o666, 0, 0), Device("c", "/dev/tty", 5, 0, 0o666, 0, 0),
)
SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"))

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def device_list(spec_devices: tuple[Device, ...]) -> list[Device]:
    """Default nodes first, then the spec's (a spec entry with the same path wins)."""
    mine = {d.path for d in spec_devices}
    return [d for d in DEFAULT_DEVICES if d.path not in mine] + list(spec_devices)


def create_devices(root_fd: int, devices: list[Device], *, bind_from_host: bool, with_kcore: bool) -> None:
    old_umask = os.umask(0)
    try:
        for dev in devices:
            parent, _, name = dev.path.rpartition("/")
            dfd = mkdirs_in_root(root_fd, parent)
            try:
                _make_node(dfd, name, dev, bind_from_host)
            finally:
                os.close(dfd)
        dev_fd = mkdirs_in_root(root_fd, "/dev")
        try:
            links = list(SYMLINKS) + ([("/proc/kcore", "core")] if with_kcore else [])
            for target, name in links:
                try:
                    os.symlink(target, name, dir_fd=dev_fd)
                except FileExistsError:
                    pass
            # /dev/ptmx must be the devpts instance's own ptmx
            try:
                os.unlink("ptmx", dir_fd=dev_fd)
            except FileNotFoundError:
                pass
            os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
        finally:
            os.close(dev_fd)
    finally:
        os.umask(old_umask)


def _make_node(dir_fd: int, name: str, dev: Device, bind_from_host: bool) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"device path {dev.path} is a symlink in the rootfs")
        os.unlink(name, dir_fd=dir_fd)
    mode = dev.file_mode if dev.file_mode is not None else 0o666
    if bind_from_host:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o000,
                         dir_fd=dir_fd))
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            linux.mount(dev.path, fd_path(fd), None, linux.MS_BIND)
        finally:
            os.close(fd)
        return
    os.mknod(name, _TYPES[dev.type] | (mode & 0o7777), os.makedev(dev.major, dev.minor), dir_fd=dir_fd)
    os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=dir_fd, follow_symlinks=False)


def open_console(console_size: tuple[int, int] | None) -> tuple[int, int]:
    """After pivot_root (so the pty belongs to the container's devpts): (master fd, slave fd)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    if console_size and console_size[0] and console_size[1]:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", console_size[0], console_size[1], 0, 0))
    return master, slave


def mount_console(slave: int) -> None:
    """Bind the pty onto /dev/console, as runc does."""
    try:
        st = os.lstat("/dev/console")
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath("/dev/console is a symlink in the container")
    except FileNotFoundError:
        os.close(os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    fd = os.open("/dev/console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        linux.mount(fd_path(slave), fd_path(fd), None, linux.MS_BIND)
    finally:
        os.close(fd)


def become_console_owner(slave: int) -> None:
    """Make the pty the controlling terminal and stdio of this (session leader) process."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
