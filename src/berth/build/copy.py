"""COPY and ADD into a step's mounted root filesystem, with Docker's destination rules.

Every destination path is resolved inside the root (openat2 RESOLVE_IN_ROOT): an image's symlink such as
`/var/run -> /run`, or `/x -> /`, leads somewhere inside the image, never onto the host. The last component is
created with O_NOFOLLOW, so nothing already in the image is written through. Sources come from the extracted
build context and are never followed when they are symlinks (a link is copied as a link).

Docker's rules, as its classic builder applies them: a directory source copies its contents; a file source goes
to `dest/basename` when dest ends with '/', names an existing directory or there are several sources, else
to dest itself; parent directories that do not exist are created 0755 with the copy's owner; copied entries
keep their mode and mtime and belong to root, or to --chown's user and group (names from the image's own
/etc/passwd and /etc/group, never NSS); --chmod sets the mode of every copied entry.

May import: berth.runtime.users, berth.util, berth.errors.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from berth.errors import InvalidArgument, NotFound
from berth.runtime.users import parse_group, parse_passwd, read_in_root
from berth.util import linux

_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Owner:
    uid: int
    gid: int


ROOT = Owner(0, 0)


def lookup_owner(rootfs: Path, spec: str) -> Owner:
    """--chown=user[:group] with names looked up in the image (a lone user is also used as the group)."""
    user, sep, group = spec.partition(":")
    if not user or (sep and not group) or ":" in group:
        raise InvalidArgument(f"invalid chown string format: {spec}")
    if not sep:
        group = user
    passwd = parse_passwd(read_in_root(str(rootfs), "/etc/passwd") or "") if not user.isdigit() else []
    groups = parse_group(read_in_root(str(rootfs), "/etc/group") or "") if not group.isdigit() else []
    if user.isdigit():
        uid = int(user)
    else:
        entry = next((p for p in passwd if p.name == user), None)
        if entry is None:
            raise NotFound(f"unable to convert uid/gid chown string to host mapping: can't find uid for user "
                           f"{user}: no such user: {user}")
        uid = entry.uid
    if group.isdigit():
        gid = int(group)
    else:
        grp = next((g for g in groups if g.name == group), None)
        if grp is None:
            raise NotFound(f"unable to convert uid/gid chown string to host mapping: can't find gid for group "
                           f"{group}: no such group: {group}")
        gid = grp.gid
    return Owner(uid, gid)


def parse_chmod(text: str) -> int:
    if not text or len(text) > 4 or any(c not in "01234567" for c in text):
        raise InvalidArgument(f"invalid chmod parameter {text!r}: expected an octal mode such as 755")
    return int(text, 8)


class RootWriter:
    """Writes into one mounted root filesystem through directory fds resolved inside it."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self._root_fd)

    def __enter__(self) -> RootWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- directories -----------------------------------------------------------------------------------

    def is_dir(self, path: str) -> bool:
        try:
            fd = linux.openat2(self._root_fd, path.strip("/") or ".", _DIR, _IN_ROOT)
        except OSError:
            return False
        os.close(fd)
        return True

    def make_dirs(self, path: str, owner: Owner, mode: int = 0o755) -> int:
        """Open directory path (inside the root), creating what is missing; returns an fd the caller closes."""
        fd = os.open(".", _DIR, dir_fd=self._root_fd)
        done = ""
        try:
            for comp in [c for c in path.split("/") if c not in ("", ".")]:
                if comp == "..":
                    raise InvalidArgument(f"{path}: '..' is not allowed in a destination")
                done = f"{done}/{comp}"
                try:
                    nxt = linux.openat2(self._root_fd, done.lstrip("/"), _DIR, _IN_ROOT)
                except FileNotFoundError:
                    try:
                        os.mkdir(comp, mode, dir_fd=fd)
                    except FileExistsError as exc:   # a dangling symlink, or a file racing in
                        raise InvalidArgument(f"cannot create directory {done}: a non-directory is in the way") \
                            from exc
                    os.chown(comp, owner.uid, owner.gid, dir_fd=fd, follow_symlinks=False)
                    os.chmod(comp, mode, dir_fd=fd, follow_symlinks=True)
                    nxt = linux.openat2(self._root_fd, done.lstrip("/"), _DIR, _IN_ROOT)
                except NotADirectoryError as exc:
                    raise InvalidArgument(f"cannot copy to {path}: {done} is not a directory") from exc
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- copying ---------------------------------------------------------------------------------------

    def copy(self, sources: Sequence[Path], dest: str, *, dest_is_dir: bool, owner: Owner = ROOT,
             chmod: int | None = None, keep_owner: bool = False, name: str | None = None) -> None:
        """Copy host paths (files, directories, symlinks, as lstat sees them) to dest inside the root; a file
        keeps its own name in a destination directory, or `name` (what the context called it) when given."""
        for src in sources:
            st = os.lstat(src)
            if stat.S_ISDIR(st.st_mode):
                existed = self.is_dir(dest)
                dfd = self.make_dirs(dest, owner)
                try:
                    if not existed:
                        _set_meta(dfd, None, st, owner, chmod, keep_owner, mtime=False)
                    self._copy_dir_contents(src, dfd, owner, chmod, keep_owner)
                finally:
                    os.close(dfd)
                continue
            if dest_is_dir or self.is_dir(dest):
                parent, target = dest, name or src.name
            else:
                parent, _, target = dest.rstrip("/").rpartition("/")
            if not target:
                raise InvalidArgument(f"cannot copy {src.name} to {dest!r}")
            pfd = self.make_dirs(parent, owner)
            try:
                self._copy_entry(src, st, pfd, target, owner, chmod, keep_owner)
            finally:
                os.close(pfd)

    def _copy_dir_contents(self, src: Path, dfd: int, owner: Owner, chmod: int | None, keep_owner: bool) -> None:
        for name in sorted(os.listdir(src)):
            path = src / name
            self._copy_entry(path, os.lstat(path), dfd, name, owner, chmod, keep_owner)

    def _copy_entry(self, src: Path, st: os.stat_result, pfd: int, name: str, owner: Owner, chmod: int | None,
                    keep_owner: bool) -> None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(name, dir_fd=pfd).st_mode):
                    os.unlink(name, dir_fd=pfd)
                    os.mkdir(name, 0o700, dir_fd=pfd)
            cfd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                self._copy_dir_contents(src, cfd, owner, chmod, keep_owner)
                _set_meta(cfd, None, st, owner, chmod, keep_owner)
            finally:
                os.close(cfd)
            return
        _remove_non_dir(pfd, name)
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), name, dir_fd=pfd)
            uid, gid = (st.st_uid, st.st_gid) if keep_owner else (owner.uid, owner.gid)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
        elif stat.S_ISREG(mode):
            with open(src, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as fin:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=pfd)
                try:
                    _copy_data(fin.fileno(), fd, st.st_size)
                    _set_meta(fd, None, st, owner, chmod, keep_owner)
                finally:
                    os.close(fd)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=pfd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                _set_meta_path(pfd, name, st, owner, chmod, keep_owner)
            finally:
                os.close(fd)
        # sockets and device nodes are not copied (Docker skips sockets; a context has no devices)


def _remove_non_dir(pfd: int, name: str) -> None:
    try:
        st = os.lstat(name, dir_fd=pfd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"cannot overwrite directory {name!r} with a non-directory")
    os.unlink(name, dir_fd=pfd)


def _copy_data(src: int, dst: int, size: int) -> None:
    left = size
    while left > 0:
        try:
            n = os.copy_file_range(src, dst, left)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            n = os.sendfile(dst, src, None, left)
        if n == 0:
            break
        left -= n
    while True:   # a file that grew since lstat: copy the rest too
        data = os.read(src, 1 << 20)
        if not data:
            break
        os.write(dst, data)


def _set_meta(fd: int, _: None, st: os.stat_result, owner: Owner, chmod: int | None, keep_owner: bool,
              mtime: bool = True) -> None:
    uid, gid = (st.st_uid, st.st_gid) if keep_owner else (owner.uid, owner.gid)
    os.fchown(fd, uid, gid)
    # chmod after chown: chown clears setuid/setgid bits
    os.fchmod(fd, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    if mtime:
        os.utime(fd, ns=(st.st_mtime_ns, st.st_mtime_ns))


def _set_meta_path(pfd: int, name: str, st: os.stat_result, owner: Owner, chmod: int | None,
                   keep_owner: bool) -> None:
    uid, gid = (st.st_uid, st.st_gid) if keep_owner else (owner.uid, owner.gid)
    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
    os.chmod(name, chmod if chmod is not None else stat.S_IMODE(st.st_mode), dir_fd=pfd)
    os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
