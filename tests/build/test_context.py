"""The build context tar (what the CLI sends) and safe source look-ups in an extracted context."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from berth.build.context import context_tar, resolve_source_entries, scoped_path
from berth.build.dockerignore import Matcher, parse_dockerignore
from berth.errors import InvalidArgument, NotFound, UnsafePath


def make_tree(root: Path, files: dict[str, str]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(data)


def tar_of(root: Path, dockerfile: str = "Dockerfile", ignore: str | None = None,
           extra: tuple[tuple[str, bytes], ...] = ()) -> dict[str, tarfile.TarInfo]:
    buf = io.BytesIO()
    matcher = Matcher(parse_dockerignore(ignore)) if ignore is not None else None
    context_tar(root, dockerfile, matcher, buf, extra)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_tar_has_relative_names_modes_and_root_owners(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM x\n", "b/c.txt": "c", "a.sh": "#!/bin/sh\n", "b/empty/": ""})
    os.chmod(tmp_path / "a.sh", 0o4755)
    os.utime(tmp_path / "b/c.txt", (1_600_000_000.7, 1_600_000_000.7))
    os.chown(tmp_path / "b/c.txt", 1234, 4321) if os.geteuid() == 0 else None
    members = tar_of(tmp_path)
    assert list(members) == ["Dockerfile", "a.sh", "b", "b/c.txt", "b/empty"]
    assert members["a.sh"].mode == 0o4755
    assert members["b"].isdir()
    c = members["b/c.txt"]
    assert (c.uid, c.gid, c.uname, c.gname, c.mtime, c.size) == (0, 0, "", "", 1_600_000_000, 1)


def test_tar_keeps_symlinks_as_links_and_never_follows_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    ctx = tmp_path / "ctx"
    make_tree(ctx, {"Dockerfile": "FROM x\n"})
    os.symlink(str(outside), ctx / "escape")
    os.symlink("../outside/secret", ctx / "rel")
    members = tar_of(ctx)
    assert set(members) == {"Dockerfile", "escape", "rel"}
    assert members["escape"].issym() and members["escape"].linkname == str(outside)
    assert members["rel"].issym() and members["rel"].linkname == "../outside/secret"


def test_tar_keeps_hardlinks_inside_the_context(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": "data", "Dockerfile": "FROM x\n"})
    os.link(tmp_path / "a", tmp_path / "b")
    members = tar_of(tmp_path)
    assert members["a"].isfile() and members["b"].islnk() and members["b"].linkname == "a"


def test_dockerignore_is_applied_but_the_dockerfile_and_itself_stay(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM x\n", ".dockerignore": "*\n", "a": "", "sub/b": ""})
    assert set(tar_of(tmp_path, ignore="*\n")) == {"Dockerfile", ".dockerignore"}


def test_a_dockerfile_inside_an_excluded_directory_is_still_sent(tmp_path: Path) -> None:
    make_tree(tmp_path, {"build/Dockerfile": "FROM x\n", "build/other": "", "keep": ""})
    assert set(tar_of(tmp_path, "build/Dockerfile", ignore="build\n")) == {"build/Dockerfile", "keep"}


def test_exceptions_walk_into_excluded_directories(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "", "node_modules/a/x": "", "node_modules/keep/y": "", "logs/1.log": "",
                         "logs/important.log": "", "src/main.py": "", "src/main.pyc": ""})
    names = set(tar_of(tmp_path, ignore="node_modules\n!node_modules/keep\nlogs/*.log\n!logs/important.log\n"
                                         "**/*.pyc\n"))
    assert names == {"Dockerfile", "node_modules/keep", "node_modules/keep/y", "logs", "logs/important.log", "src",
                     "src/main.py"}


def test_double_star_exception_does_not_reenter_an_excluded_directory(tmp_path: Path) -> None:
    # Docker's walker only enters an excluded directory for an exception that names it literally.
    make_tree(tmp_path, {"Dockerfile": "", "dir/keep": ""})
    assert set(tar_of(tmp_path, ignore="dir\n!**/keep\n")) == {"Dockerfile"}


def test_extra_files_are_appended(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": ""})
    members = tar_of(tmp_path, "", extra=((".dockerfile.abc", b"FROM x\n"),))
    assert members[".dockerfile.abc"].size == 7 and members[".dockerfile.abc"].mode == 0o600


def test_the_stream_ends_like_gos_writer_without_record_padding(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    buf = io.BytesIO()
    size = context_tar(tmp_path, "Dockerfile", None, buf)
    assert size == len(buf.getvalue()) == 512 + 512 + 1024   # what the docker CLI reports as 2.048kB


def test_extra_files_replace_an_entry_in_place(tmp_path: Path) -> None:
    make_tree(tmp_path, {".dockerignore": "x\n", "a": ""})
    buf = io.BytesIO()
    context_tar(tmp_path, "", None, buf, ((".dockerignore", b"x\n.dockerfile.1\n"), (".dockerfile.1", b"FROM y\n")))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = tar.getnames()
        ignore = tar.extractfile(".dockerignore")
        assert ignore is not None and ignore.read() == b"x\n.dockerfile.1\n"
    assert names == [".dockerignore", "a", ".dockerfile.1"]


def test_missing_context_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not found"):
        context_tar(tmp_path / "nope", "Dockerfile", None, io.BytesIO())


# --- scoped look-ups --------------------------------------------------------------------------------------------

@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    make_tree(root, {"a.txt": "a", "b.txt": "b", "dir/c.txt": "c", "dir/sub/d.md": "d", "star*": "s"})
    (tmp_path / "secret").write_text("secret")
    os.symlink("/etc", root / "abs-link")
    os.symlink("../secret", root / "up-link")
    os.symlink("dir/c.txt", root / "c-link")
    os.symlink("/dir", root / "dir-abs")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return root


def test_scoped_path_keeps_symlinks_inside_the_root(ctx: Path) -> None:
    assert scoped_path(ctx, "a.txt") == ctx / "a.txt"
    assert scoped_path(ctx, "/a.txt") == ctx / "a.txt"
    assert scoped_path(ctx, "abs-link/passwd") == ctx / "etc/passwd"
    assert scoped_path(ctx, "up-link") == ctx / "secret"
    assert scoped_path(ctx, "c-link") == ctx / "dir/c.txt"
    assert scoped_path(ctx, "dir-abs/sub/d.md") == ctx / "dir/sub/d.md"
    assert scoped_path(ctx, "dir/../a.txt") == ctx / "a.txt"
    assert scoped_path(ctx, ".") == ctx


def test_scoped_path_refuses_dot_dot_escapes(ctx: Path) -> None:
    for bad in ("../x", "dir/../../x", "../ctx2/x"):
        with pytest.raises(UnsafePath, match="forbidden path outside the build context"):
            scoped_path(ctx, bad)


def test_scoped_path_stops_symlink_loops(ctx: Path) -> None:
    with pytest.raises(UnsafePath, match="too many links"):
        scoped_path(ctx, "loop1")


def _paths(ctx: Path, patterns: list[str]) -> list[Path]:
    return [entry.path for entry in resolve_source_entries(ctx, patterns)]


def test_resolve_sources_plain_and_wildcards(ctx: Path) -> None:
    assert _paths(ctx, ["a.txt"]) == [ctx / "a.txt"]
    assert _paths(ctx, ["./a.txt", "/b.txt"]) == [ctx / "a.txt", ctx / "b.txt"]
    assert _paths(ctx, ["*.txt"]) == [ctx / "a.txt", ctx / "b.txt"]
    assert _paths(ctx, ["dir/*/*.md"]) == [ctx / "dir/sub/d.md"]
    assert _paths(ctx, ["d?r"]) == [ctx / "dir"]
    assert _paths(ctx, ["star*"]) == [ctx / "star*"]
    assert _paths(ctx, ["[ab].txt"]) == [ctx / "a.txt", ctx / "b.txt"]
    assert _paths(ctx, ["."]) == [ctx]


def test_resolve_source_entries_keep_the_context_name(ctx: Path) -> None:
    (entry,) = resolve_source_entries(ctx, ["c-link"])
    assert (entry.name, entry.path) == ("c-link", ctx / "dir/c.txt")


def test_resolve_sources_never_leaves_the_context(ctx: Path) -> None:
    with pytest.raises(UnsafePath):
        _paths(ctx, ["../secret"])
    with pytest.raises(NotFound, match="file not found in build context"):
        _paths(ctx, ["up-link"])           # resolves to <ctx>/secret, which does not exist
    with pytest.raises(NotFound, match="file not found in build context"):
        _paths(ctx, ["abs-link/shadow"])


def test_resolve_sources_missing(ctx: Path) -> None:
    with pytest.raises(NotFound, match="stat missing: file does not exist"):
        _paths(ctx, ["missing"])
    with pytest.raises(NotFound):  # an escaped wildcard is not a wildcard, and is looked up as written
        _paths(ctx, ["star\\*"])
    with pytest.raises(NotFound, match="no source files were specified"):
        _paths(ctx, ["*.nothing"])
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        _paths(ctx, ["[a"])
