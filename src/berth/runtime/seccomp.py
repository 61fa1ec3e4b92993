"""Seccomp: Docker's default profile turned into the spec's `linux.seccomp`, and that compiled and loaded through
libseccomp (ctypes).

`default_seccomp(caps)` is pure (the engine calls it when building a spec). `compile_filter` runs in the runtime before
fork, so the container's init only calls `Filter.load()` (one libseccomp call, no allocation of Python objects that
could need an import). May import: berth.oci, berth.errors.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from berth.errors import InvalidArgument, RuntimeFailure
from berth.oci.spec import Seccomp, SeccompArg, SeccompRule

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds on every container start
if TYPE_CHECKING:
    from typing import Any


_PROFILE_PATH = os.path.join(os.path.dirname(__file__), "seccomp_default.json")

# Go's names for architectures (Docker's profile "arches") and libseccomp's names for the spec's "architectures".
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "s390x": "s390x", "ppc64le": "ppc64le",
           "riscv64": "riscv64", "loongarch64": "loong64"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
              "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64",
              "loong64": "SCMP_ARCH_LOONGARCH64"}


def load_default_profile() -> dict[str, Any]:
    """Docker's default seccomp profile (moby/profiles seccomp/default.json), as shipped with berth."""
    import json  # the engine's spec building only, never the container start

    with open(_PROFILE_PATH, "rb") as f:
        profile: dict[str, Any] = json.load(f)
    return profile


def _kernel_at_least(kernel: tuple[int, int], text: str) -> bool:
    major, _, minor = text.partition(".")
    return kernel >= (int(major), int(minor or 0))


def profile_to_seccomp(profile: dict[str, Any], capabilities: Iterable[str], *, goarch: str | None = None,
                       kernel: tuple[int, int] | None = None) -> Seccomp:
    """A Docker-format profile (includes/excludes by caps, arches, minKernel) resolved for one capability set,
    architecture and kernel into the OCI `linux.seccomp` object, as dockerd does before calling the runtime."""
    import platform  # only the engine's spec building needs it, never the container start

    caps = {c if c.startswith("CAP_") else "CAP_" + c for c in capabilities}
    arch = goarch or _GOARCH.get(platform.machine(), platform.machine())
    if kernel is None:
        release = os.uname().release.split("-")[0].split(".")
        kernel = (int(release[0]), int(release[1]))
    native = _SCMP_ARCH.get(arch)
    architectures: list[str] = []
    for entry in profile.get("archMap") or ():
        if entry["architecture"] == native:
            architectures = [entry["architecture"], *(entry.get("subArchitectures") or ())]
    rules: list[SeccompRule] = []
    for raw in profile.get("syscalls") or ():
        inc, exc = raw.get("includes") or {}, raw.get("excludes") or {}
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not _kernel_at_least(kernel, inc["minKernel"]):
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        rules.append(SeccompRule(tuple(raw["names"]), raw["action"], raw.get("errnoRet"),
                                 tuple(SeccompArg(a["index"], a["value"], a["op"], a.get("valueTwo", 0))
                                       for a in raw.get("args") or ())))
    return Seccomp(profile["defaultAction"], profile.get("defaultErrnoRet"), tuple(architectures), (), tuple(rules))


def default_seccomp(capabilities: Iterable[str]) -> Seccomp:
    """Docker's default profile for a container holding `capabilities` on this machine."""
    return profile_to_seccomp(load_default_profile(), capabilities)


# --- libseccomp ---

_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6,
        "SCMP_CMP_MASKED_EQ": 7}
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_TSYNC = 4
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7
_EPERM = 1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_lib: ctypes.CDLL | None = None


def _libseccomp() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise RuntimeFailure("seccomp requested but libseccomp.so.2 is not installed (apt install libseccomp2)") \
                from exc
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        _lib = lib
    return _lib


def _action(name: str, errno_ret: int | None) -> int:
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    raise InvalidArgument(f"seccomp action {name} is not supported by berth-runtime")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# seccomp(2)'s number where berth knows it; elsewhere filters are loaded through libseccomp every time
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "loongarch64": 277}.get(os.uname().machine)
_SECCOMP_SET_MODE_FILTER = 1
_BPF_INSN_SIZE = 8
_CACHE_SIZE = 8
_compiled: dict[Seccomp, Filter] = {}


class Filter:
    """A compiled filter, loaded in the container's init just before exec: a libseccomp context, or (when cached)
    the BPF program libseccomp generated from one, loaded with a single seccomp(2) call."""
    __slots__ = ("_ctx", "_lib", "_prog", "_code", "shared")

    def __init__(self, ctx: int, lib: ctypes.CDLL) -> None:
        self._ctx, self._lib = ctx, lib
        self._prog: _SockFprog | None = None
        self._code: ctypes.Array[ctypes.c_char] | None = None
        self.shared = False   # cached for later containers: release() leaves it alone

    def load(self) -> None:
        if self._prog is not None:
            libc = _libc()
            if libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(self._prog)) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
            return
        rc = self._lib.seccomp_load(self._ctx)
        if rc != 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")

    def release(self) -> None:
        if self._ctx and not self.shared:
            self._lib.seccomp_release(self._ctx)
            self._ctx = 0

    def _to_program(self) -> None:
        """Generate the BPF program now (what seccomp_load would do in every init) and keep only it."""
        lib = self._lib
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        fd = os.memfd_create("berth-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(self._ctx, fd)
            if rc != 0:
                raise RuntimeFailure(f"seccomp_export_bpf: {os.strerror(-rc)}")
            os.lseek(fd, 0, os.SEEK_SET)
            code = b""
            while chunk := os.read(fd, 65536):
                code += chunk
        finally:
            os.close(fd)
        if not code or len(code) % _BPF_INSN_SIZE:
            raise RuntimeFailure(f"seccomp_export_bpf wrote {len(code)} bytes: not a BPF program")
        self._code = ctypes.create_string_buffer(code, len(code))
        self._prog = _SockFprog(len(code) // _BPF_INSN_SIZE, ctypes.addressof(self._code))
        lib.seccomp_release(self._ctx)
        self._ctx = 0
        self.shared = True


_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle
    if _libc_handle is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.syscall.argtypes = [ctypes.c_long, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
        _libc_handle = libc
    return _libc_handle


def is_cached(spec: Seccomp) -> bool:
    return spec in _compiled


def compile_filter(spec: Seccomp) -> Filter:
    """The filter for spec, compiled once per process and profile: a fork server that compiled a profile before
    forking (berth.monitor.zygote) hands it to every monitor it forks, and their containers' inits load it with one
    system call (libseccomp takes tens of milliseconds to compile Docker's profile, and as long again to generate
    its BPF, per container otherwise)."""
    cached = _compiled.get(spec)
    if cached is not None:
        return cached
    filt = _compile(spec)
    if spec.flags or _SYS_SECCOMP is None:
        return filt   # flags need libseccomp's own load
    try:
        filt._to_program()
    except BaseException:
        filt.release()
        raise
    _libc()   # resolved now: the init must not load libraries after fork
    while len(_compiled) >= _CACHE_SIZE:
        _compiled.pop(next(iter(_compiled)))
    _compiled[spec] = filt
    return filt


def _compile(spec: Seccomp) -> Filter:
    """Build the filter for spec. Unknown syscall names are skipped (profiles name syscalls of newer kernels)."""
    lib = _libseccomp()
    default = _action(spec.default_action, spec.default_errno_ret)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise RuntimeFailure("seccomp_init failed")
    filt = Filter(ctx, lib)
    try:
        # the runtime sets no_new_privs itself, only if the spec asks for it
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)
        for flag in spec.flags:
            if flag == "SECCOMP_FILTER_FLAG_LOG":
                lib.seccomp_attr_set(ctx, _FLTATR_CTL_LOG, 1)
            elif flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
                lib.seccomp_attr_set(ctx, _FLTATR_CTL_SSB, 1)
            elif flag == "SECCOMP_FILTER_FLAG_TSYNC":
                lib.seccomp_attr_set(ctx, _FLTATR_CTL_TSYNC, 1)
            else:
                raise InvalidArgument(f"unknown seccomp flag {flag!r}")
        for arch in spec.architectures:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise InvalidArgument(f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc not in (0, -17):  # -EEXIST: the native one is there already
                raise RuntimeFailure(f"seccomp_arch_add({arch}): {os.strerror(-rc)}")
        for rule in spec.syscalls:
            action = _action(rule.action, rule.errno_ret)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default action
            _add_rule(lib, ctx, rule, action)
    except BaseException:
        filt.release()
        raise
    return filt


def _add_rule(lib: ctypes.CDLL, ctx: int, rule: SeccompRule, action: int) -> None:
    # Conditions on the same argument cannot be ANDed by libseccomp: like runc, add one rule per condition then.
    indices = [a.index for a in rule.args]
    groups = [rule.args] if len(set(indices)) == len(indices) else [(a,) for a in rule.args]
    for name in rule.names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == -1:
            continue
        for group in groups:
            arr = (_ArgCmp * max(1, len(group)))()
            for i, a in enumerate(group):
                arr[i] = _ArgCmp(a.index, _OPS[a.op], a.value & 0xFFFFFFFFFFFFFFFF, a.value_two & 0xFFFFFFFFFFFFFFFF)
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
            if rc != 0:
                raise RuntimeFailure(f"seccomp rule for {name} ({rule.action}): {os.strerror(-rc)}")
