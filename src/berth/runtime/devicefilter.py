"""The devices cgroup of cgroup v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) built from the spec's rules.

v1 has devices.allow/deny files; v2 only has this hook. `compile_rules` is pure: rules are checked from the last to
the first and the first that matches decides (the later rule wins, as writes to v1's files do); no match denies.
`attach` loads the program and attaches it to a cgroup directory. May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Sequence

from berth.errors import RuntimeFailure
from berth.oci.spec import DeviceRule
from berth.util import linux

_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}
_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_DEVICE = 15
_ATTACH_CGROUP_DEVICE = 6
_F_ALLOW_MULTI = 2


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _ldx_w(dst: int, src: int, off: int) -> bytes:
    return _insn(0x61, dst, src, off)


def _mov_reg(dst: int, src: int) -> bytes:
    return _insn(0xBF, dst, src)


def _and_imm(dst: int, imm: int) -> bytes:
    return _insn(0x54, dst, imm=imm)


def _rsh_imm(dst: int, imm: int) -> bytes:
    return _insn(0x74, dst, imm=imm)


def _jne_imm(dst: int, imm: int, off: int) -> bytes:
    return _insn(0x55, dst, off=off, imm=imm)


def _ret(value: int) -> list[bytes]:
    return [_insn(0xB7, 0, imm=value), _insn(0x95)]


def compile_rules(rules: Sequence[DeviceRule]) -> bytes:
    """r3 = device type, r4 = requested access, r5 = major, r6 = minor (struct bpf_cgroup_dev_ctx)."""
    prog = [_ldx_w(2, 1, 0), _mov_reg(3, 2), _and_imm(3, 0xFFFF), _mov_reg(4, 2), _rsh_imm(4, 16),
            _ldx_w(5, 1, 4), _ldx_w(6, 1, 8)]
    for rule in reversed(rules):
        checks: list[tuple[int, int]] = []
        if rule.type != "a":
            checks.append((3, _DEV_BLOCK if rule.type == "b" else _DEV_CHAR))
        allowed = sum(_ACC[c] for c in set(rule.access))
        if rule.type != "a" and rule.major is not None and rule.major >= 0:
            checks.append((5, rule.major))
        if rule.type != "a" and rule.minor is not None and rule.minor >= 0:
            checks.append((6, rule.minor))
        tail = 2  # the verdict: mov r0, exit
        body_after: list[list[bytes]] = []
        for reg, value in checks:
            body_after.append([_jne_imm(reg, value, 0)])
        if allowed != 7:
            # the request must ask for nothing outside the rule's access
            body_after.append([_mov_reg(7, 4), _and_imm(7, ~allowed & 7), _jne_imm(7, 0, 0)])
        # patch each jump to land after this rule's verdict
        flat: list[bytes] = [i for part in body_after for i in part]
        for index, insn in enumerate(flat):
            if insn[0] == 0x55:
                remaining = len(flat) - index - 1 + tail
                code, regs, _, imm = struct.unpack("<BBhi", insn)
                flat[index] = struct.pack("<BBhi", code, regs, remaining, imm)
        prog.extend(flat + _ret(1 if rule.allow else 0))
        if not flat:
            return b"".join(prog)  # it matches every device: nothing after it is reachable (the verifier refuses)
    prog.extend(_ret(0))
    return b"".join(prog)


def attach(cgroup_dir: str, program: bytes) -> None:
    license_ = ctypes.create_string_buffer(b"Apache")
    insns = ctypes.create_string_buffer(program, len(program))  # both kept alive until the call returns
    attr = struct.pack("<IIQQIIQII16sII", _PROG_TYPE_CGROUP_DEVICE, len(program) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 0, 0, 0, 0, 0, b"berth_devices", 0, _ATTACH_CGROUP_DEVICE)
    try:
        prog_fd = linux.bpf(_BPF_PROG_LOAD, attr.ljust(128, b"\0"))
    except OSError as exc:
        raise RuntimeFailure(f"cannot load the device filter for cgroup v2: {exc}") from exc
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            linux.bpf(_BPF_PROG_ATTACH, struct.pack("<IIIII", dir_fd, prog_fd, _ATTACH_CGROUP_DEVICE,
                                                    _F_ALLOW_MULTI, 0).ljust(128, b"\0"))
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise RuntimeFailure(f"cannot attach the device filter to {cgroup_dir}: {exc}") from exc
    finally:
        os.close(prog_fd)
