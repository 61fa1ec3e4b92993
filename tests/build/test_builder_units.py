"""The builder's pure pieces and its filesystem helpers, without a daemon: history texts, build-arg scoping, the
source checksum, --chown look-ups in the image's own files, in-root copying, ADD's archive detection, the plan."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from berth.build.cache import BuildCache, cache_key
from berth.build.checksum import source_checksum
from berth.build.copy import Owner, RootWriter, lookup_owner, parse_chmod
from berth.build.fetch import is_archive, unpack_archive
from berth.build.plan import plan_build
from berth.build.steps import (
    ArgScope,
    go_duration,
    go_quote,
    healthcheck_text,
    nop,
    normalise_port,
    parse_duration_ns,
    run_created_by,
    set_env,
)
from berth.errors import InvalidArgument, NotFound, UnsafePath
from berth.oci.config import Healthcheck
from berth.oci.digest import Digest


def test_history_texts_are_dockerd_s() -> None:
    assert nop("ENV a=b") == "/bin/sh -c #(nop)  ENV a=b"
    assert nop("CMD " + go_quote(["sh", "-c", 'echo "hi"'])) == '/bin/sh -c #(nop)  CMD ["sh" "-c" "echo \\"hi\\""]'
    assert nop("USER x", ("/bin/bash", "-ec")) == "/bin/bash -ec #(nop)  USER x"
    assert run_created_by(["/bin/sh", "-c", "make"], ["A=1", "B=2"]) == "|2 A=1 B=2 /bin/sh -c make"
    assert run_created_by(["/bin/sh", "-c", "make"], []) == "/bin/sh -c make"
    hc = Healthcheck(("CMD-SHELL", "true"), 90 * 10**9, 1_500_000_000, 0, 0, 3)
    assert healthcheck_text(hc) == "HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"1m30s\" \"1.5s\" \"0s\" '\\x03'}"
    assert go_duration(3600 * 10**9 + 5 * 10**9) == "1h0m5s"


def test_durations_ports_and_env_updates() -> None:
    assert parse_duration_ns("1m30s", "x") == 90 * 10**9
    assert parse_duration_ns("500ms", "x") == 500 * 10**6
    for bad in ("", "10", "x1s", "1y"):
        with pytest.raises(InvalidArgument):
            parse_duration_ns(bad, "--interval")
    assert normalise_port("80") == ["80/tcp"] and normalise_port("53/UDP") == ["53/udp"]
    assert normalise_port("8000-8002") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    for bad in ("http", "80/icmp", "90-80"):
        with pytest.raises(InvalidArgument):
            normalise_port(bad)
    assert set_env(("A=1", "B=2"), "A", "3") == ("A=3", "B=2")      # in place, as Docker keeps the order
    assert set_env(("A=1",), "C", "x") == ("A=1", "C=x")


def test_arg_scope_follows_docker_s_rules() -> None:
    scope = ArgScope(given={"V": "given", "HTTP_PROXY": "http://proxy", "UNUSED": "u"},
                     global_defaults={"G": "global", "V": "gdefault"})
    scope.declare("V", "default")        # --build-arg wins over the default
    scope.declare("G", None)             # a bare ARG takes the global default
    scope.declare("E", None)             # declared but unset: not in the environment
    assert scope.values() == {"V": "given", "G": "global", "HTTP_PROXY": "http://proxy"}
    # the proxy arg reaches RUN but not the history unless declared; ENV overrides an arg
    assert scope.for_run(("G=from-env",)) == ["HTTP_PROXY=http://proxy", "V=given"]
    assert scope.for_history(("G=from-env",)) == ["V=given"]
    scope.declare("HTTP_PROXY", None)
    assert scope.for_history(()) == ["G=global", "HTTP_PROXY=http://proxy", "V=given"]


def test_the_checksum_sees_names_modes_and_contents_but_not_mtimes(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    first = source_checksum([d])
    assert first.startswith("dir:")
    os.utime(d / "sub" / "f", (1, 1))
    assert source_checksum([d]) == first
    os.chmod(d / "sub" / "f", 0o600)
    assert source_checksum([d]) != first
    os.chmod(d / "sub" / "f", 0o644)
    (d / "sub" / "f").write_text("y")
    assert source_checksum([d]) != first
    assert source_checksum([d / "sub" / "f"]).startswith("file:")
    assert source_checksum([d / "sub" / "f", d]).startswith("multi:")


def test_chown_names_come_from_the_image_s_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1003:\nstaff:x:50:\n")
    assert lookup_owner(tmp_path, "app") == Owner(1001, 1003)          # a lone name is also the group's
    assert lookup_owner(tmp_path, "app:staff") == Owner(1001, 50)
    assert lookup_owner(tmp_path, "42:43") == Owner(42, 43)
    assert lookup_owner(tmp_path, "42") == Owner(42, 42)
    with pytest.raises(NotFound, match="no such user: ghost"):
        lookup_owner(tmp_path, "ghost")
    for bad in ("", "a:", "a:b:c"):
        with pytest.raises(InvalidArgument):
            lookup_owner(tmp_path, bad)
    assert parse_chmod("0640") == 0o640
    for bad in ("", "888", "u+x", "77777"):
        with pytest.raises(InvalidArgument):
            parse_chmod(bad)


@pytest.mark.root
def test_copies_stay_inside_the_root_whatever_the_image_s_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/", root / "escape")               # /escape -> / : inside the image it is the image's root
    os.symlink("../../../..", root / "up")
    src = tmp_path / "f.txt"
    src.write_text("data")
    with RootWriter(root) as w:
        w.copy([src], "/escape/tmp/", dest_is_dir=True, owner=Owner(5, 6), chmod=0o600)
        w.copy([src], "/up/etc/x.txt", dest_is_dir=False)
        w.copy([src], "/real", dest_is_dir=False)      # an existing directory: the file goes inside
    assert (root / "tmp" / "f.txt").read_text() == "data"
    st = os.stat(root / "tmp" / "f.txt")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (5, 6, 0o600)
    assert (root / "etc" / "x.txt").read_text() == "data" and (root / "real" / "f.txt").exists()
    assert not (tmp_path / "etc").exists()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_extracts_archives_and_refuses_escapes(tmp_path: Path) -> None:
    good = tmp_path / "good.tgz"
    good.write_bytes(_tar({"dir/file": b"hello"}))
    text = tmp_path / "notes.txt"
    text.write_text("just text, not a tar\n" * 40)
    assert is_archive(good) and not is_archive(text)
    out = tmp_path / "out"
    out.mkdir()
    unpack_archive(good, out)
    assert (out / "dir" / "file").read_bytes() == b"hello"
    evil = tmp_path / "evil.tgz"
    evil.write_bytes(_tar({"../../outside": b"x"}))
    out2 = tmp_path / "out2"
    out2.mkdir()
    with pytest.raises(UnsafePath):
        unpack_archive(evil, out2)
    assert not (tmp_path.parent / "outside").exists()


def test_the_plan_counts_steps_and_expands_from_with_global_args() -> None:
    text = "ARG TAG=1\nFROM busybox:${TAG} AS a\nRUN x\nFROM a\nCOPY --from=a / /\nFROM busybox AS unused\n"
    plan = plan_build(text, "", {"TAG": "2"})
    assert [s.base for s in plan.stages] == ["busybox:2", "a", "busybox"]
    assert [s.base_is_stage for s in plan.stages] == [False, True, False]
    assert plan.total_steps == 6   # dockerd counts (and prints) the global ARG as a step
    assert [i.original for i in plan.global_args] == ["ARG TAG=1"] and plan.warnings == ()
    target = plan_build(text, "a", {})
    assert len(target.stages) == 1 and target.total_steps == 3 and target.stages[0].base == "busybox:1"
    with pytest.raises(InvalidArgument, match="failed to reach build target"):
        plan_build(text, "nope", {})
    with pytest.raises(InvalidArgument, match="failed to reach build target 0 in Dockerfile"):
        plan_build(text, "0", {})   # --target takes stage names only, as in Docker


def test_the_plan_keeps_from_and_global_arg_expansion_errors_for_their_steps() -> None:
    blank = plan_build("ARG v\nFROM ${v}\nFROM busybox AS ok\n", "", {})
    assert blank.stages[0].error == "base name (${v}) should not be blank" and blank.stages[1].error == ""
    assert plan_build("ARG v\nFROM ${v}\n", "", {"v": "busybox"}).stages[0].error == ""
    bad_from = plan_build("FROM busybox:${t:-1\n", "", {})
    assert bad_from.stages[0].error.startswith('failed to process "busybox:${t:-1"') and bad_from.global_error is None
    bad_arg = plan_build("ARG a=1\nARG b=${a:-x\nFROM busybox\n", "", {"b": "2"})
    assert bad_arg.global_error is not None and bad_arg.global_error[0] == 1
    assert bad_arg.global_error[1].startswith('failed to process "${a:-x"')


def test_the_plan_carries_the_parsers_warnings() -> None:
    plan = plan_build("FROM busybox\nRUN a \\\n\n  b\n", "", {})
    assert plan.total_steps == 2
    assert plan.warnings and plan.warnings[0].startswith("[WARNING]: Empty continuation line found in:")


def test_the_cache_index_is_on_disk_and_ignores_removed_images(tmp_path: Path) -> None:
    alive = {Digest.of(b"one")}
    cache = BuildCache(tmp_path, lambda d: d in alive)
    key = cache_key(None, "RUN x", "")
    cache.store(key, Digest.of(b"one"))
    assert BuildCache(tmp_path, lambda d: d in alive).lookup(key) == Digest.of(b"one")
    alive.clear()
    assert cache.lookup(key) is None
    assert cache_key(Digest.of(b"p"), "RUN x") != cache_key(Digest.of(b"q"), "RUN x")
