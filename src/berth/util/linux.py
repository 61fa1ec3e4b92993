"""The one thin module through which berth calls Linux syscalls that the standard library lacks.

Each wrapper raises OSError naming the call and its arguments. May import: berth.errors.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8


def _fail(call: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        raise _fail(f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})")


def umount(target: str, flags: int = 0) -> None:
    if _libc.umount2(target.encode(), flags) != 0:
        raise _fail(f"umount2({target!r}, {flags:#x})")


# --- namespaces, process attributes, capabilities (added for berth.runtime) ---

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2 resolve flags (linux/openat2.h)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_PIVOT_ROOT = 155
_SYS_CAPGET = 125
_SYS_CAPSET = 126
_SYS_OPENAT2 = 437
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        raise _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    if _libc.setns(fd, nstype) != 0:
        raise _fail(f"setns({fd}, {nstype:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(_SYS_PIVOT_ROOT, new_root.encode(), put_old.encode()) != 0:
        raise _fail(f"pivot_root({new_root!r}, {put_old!r})")


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) != 0:
        raise _fail(f"sethostname({name!r})")


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, len(raw)) != 0:
        raise _fail(f"setdomainname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret: int = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _fail(f"prctl({option}, {arg2}, {arg3})")
    return ret


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    if _libc.syscall(_SYS_CAPGET, ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail(f"capget({pid})")
    return tuple(getattr(data[0], f) | (getattr(data[1], f) << 32)  # type: ignore[return-value]
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in ((0, 0), (1, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.syscall(_SYS_CAPSET, ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail(f"capset({effective:#x}, {permitted:#x}, {inheritable:#x})")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str | bytes, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open path relative to dirfd under the given RESOLVE_* rules; returns the fd.

    path may be bytes, or a str holding surrogate escapes (names from tar headers need not be UTF-8).
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd: int = _libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        raise _fail(f"openat2({dirfd}, {path!r}, {flags:#x}, resolve={resolve:#x})")
    return fd


# --- snapshots: a private cwd for one thread (relative overlay paths), filesystem sync ---

CLONE_FS = 0x00000200

_libc.syncfs.argtypes = [ctypes.c_int]


def syncfs(fd: int) -> None:
    """Flush the whole filesystem holding fd (cheaper than sync(2), which flushes every one)."""
    if _libc.syncfs(fd) != 0:
        raise _fail(f"syncfs({fd})")


_SYS_BPF = 321


def bpf(cmd: int, attr: bytes) -> int:
    """bpf(2) with a raw attr union (zero-padded bytes); returns the syscall's result (an fd for loads)."""
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret: int = _libc.syscall(_SYS_BPF, cmd, buf, len(attr))
    if ret < 0:
        raise _fail(f"bpf({cmd})")
    return ret


_SYS_KEYCTL = 250
_KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str) -> int:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring, so a container never shares the
    runtime's (root's) keys. Returns the keyring's serial."""
    ret: int = _libc.syscall(_SYS_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING, name.encode(), 0, 0, 0)
    if ret < 0:
        raise _fail(f"keyctl(JOIN_SESSION_KEYRING, {name!r})")
    return ret


_M_ARENA_MAX = -8


def limit_malloc_arenas(count: int) -> bool:
    """mallopt(M_ARENA_MAX, count): glibc gives each new thread its own heap up to 8 per CPU, and a threaded
    daemon keeps the free memory of all of them. Call it before starting threads; False if glibc refused."""
    return bool(_libc.mallopt(_M_ARENA_MAX, count))


def malloc_trim() -> bool:
    """malloc_trim(0): return the free pages of every malloc heap to the kernel. True if any was released."""
    return bool(_libc.malloc_trim(ctypes.c_size_t(0)))
