"""Seccomp compiled once per profile: berth.runtime.seccomp keeps the BPF program libseccomp generated, the monitor
fork server compiles a container's profile before it forks the monitor, and a process that loads the cached
program is filtered exactly as with libseccomp's own load."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from berth.monitor.zygote import _precompile
from berth.oci.spec import Seccomp
from berth.runtime import seccomp
from berth.runtime.seccomp import compile_filter, default_seccomp
from berth.util import linux

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
               "CAP_KILL", "CAP_AUDIT_WRITE"]


def _in_child(fn: object) -> int:
    """Run fn() in a forked child; its exit status (fn's int result, 99 on an exception)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()  # type: ignore[operator]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _unshare_errno() -> int:
    try:
        linux.unshare(linux.CLONE_NEWUTS)
    except OSError as exc:
        return exc.errno or 98
    return 0


@pytest.mark.skipif(seccomp._SYS_SECCOMP is None, reason="seccomp(2)'s number is not known for this machine")
def test_a_profile_is_compiled_once_and_release_keeps_it() -> None:
    spec = default_seccomp(DOCKER_CAPS)
    first = compile_filter(spec)
    first.release()   # what the runtime does after each create: a cached filter stays usable
    again = compile_filter(Seccomp.from_json(spec.to_json()))   # an equal profile, parsed again
    assert again is first and first.shared


@pytest.mark.root
@pytest.mark.skipif(seccomp._SYS_SECCOMP is None, reason="seccomp(2)'s number is not known for this machine")
def test_the_cached_program_filters_like_libseccomp() -> None:
    assert _in_child(_unshare_errno) == 0   # root, no filter: allowed
    spec = default_seccomp(DOCKER_CAPS)     # no CAP_SYS_ADMIN: unshare refused with EPERM
    filt = compile_filter(spec)
    assert filt.shared

    def filtered() -> int:
        filt.load()
        return _unshare_errno()

    assert _in_child(filtered) == errno.EPERM
    # and libseccomp's own load of a fresh, uncached context refuses the same call
    fresh = seccomp._compile(spec)
    try:
        def by_libseccomp() -> int:
            fresh.load()
            return _unshare_errno()

        assert _in_child(by_libseccomp) == errno.EPERM
    finally:
        fresh.release()


def test_flags_are_left_to_libseccomp() -> None:
    spec = Seccomp("SCMP_ACT_ALLOW", None, (), ("SECCOMP_FILTER_FLAG_LOG",), ())
    filt = compile_filter(spec)
    try:
        assert not filt.shared and compile_filter(spec) is not filt
    finally:
        filt.release()


@pytest.mark.skipif(seccomp._SYS_SECCOMP is None, reason="seccomp(2)'s number is not known for this machine")
def test_the_zygote_precompiles_a_bundle_s_profile(tmp_path: Path) -> None:
    spec = default_seccomp([*DOCKER_CAPS, "CAP_SYS_PTRACE"])   # a profile no other test compiled
    seccomp._compiled.pop(spec, None)
    (tmp_path / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "linux": {"seccomp": spec.to_json()}}))
    _precompile(["--id", "x", "--bundle", str(tmp_path), "--socket", "/nonexistent"])
    assert seccomp.is_cached(spec)


@pytest.mark.parametrize("content", [None, b"{not json", b'{"linux": {"seccomp": {"defaultAction": "NOPE"}}}',
                                     b'{"linux": []}', b"[]"])
def test_precompile_leaves_bad_bundles_to_the_monitor(tmp_path: Path, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / "config.json").write_bytes(content)
    before = dict(seccomp._compiled)
    _precompile(["--id", "x", "--bundle", str(tmp_path)])
    _precompile(["--id", "x"])   # no --bundle at all
    assert seccomp._compiled == before
