"""Users and groups of a container, read from the rootfs' own /etc/passwd and /etc/group.

Never NSS: `pwd`/`grp` would consult the host's nsswitch.conf (and an image's, once inside it, loading the image's
libnss_*.so into a root process). The files are opened inside the rootfs with openat2(RESOLVE_IN_ROOT), so a symlinked
/etc/passwd cannot point at a host file. May import: berth.util, berth.errors.
"""

from __future__ import annotations

import os

from berth.errors import InvalidArgument, NotFound
from berth.oci.record import record
from berth.util import linux

_MAX_FILE = 4 << 20


@record
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@record
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@record
class ExecUser:
    """Who a container process runs as: ids, supplementary groups and the home directory."""
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def parse_passwd(text: str) -> list[PasswdEntry]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 7 or not parts[2].isdigit() or not parts[3].isdigit():
            continue  # malformed lines are skipped, as libc and runc's parser do
        out.append(PasswdEntry(parts[0], int(parts[2]), int(parts[3]), parts[5], parts[6]))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 4 or not parts[2].isdigit():
            continue
        out.append(GroupEntry(parts[0], int(parts[2]), tuple(m for m in parts[3].split(",") if m)))
    return out


def read_in_root(rootfs: str, path: str) -> str | None:
    """The text of path inside rootfs (symlinks resolved inside it), or None if it does not exist."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = linux.openat2(root_fd, path.lstrip("/"), os.O_RDONLY, linux.RESOLVE_IN_ROOT
                               | linux.RESOLVE_NO_MAGICLINKS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path} in the rootfs {rootfs}: {exc.strerror}") from exc
        try:
            return os.read(fd, _MAX_FILE).decode("utf-8", "replace")
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


def exec_user(passwd: list[PasswdEntry], groups: list[GroupEntry], uid: int, gid: int,
              additional_gids: tuple[int, ...] = (), *, member_groups: bool = False) -> ExecUser:
    """Who runs: home from passwd ("/" if the uid has no entry); supplementary groups are the spec's
    additionalGids and, only with member_groups (Docker's `--user name` without a group), the groups naming the
    user as a member. runc passes "uid:gid" and so never adds member groups to an OCI process; neither do we."""
    entry = next((p for p in passwd if p.uid == uid), None)
    member_of: list[int] = []
    if entry is not None and member_groups:
        member_of = [g.gid for g in groups if entry.name in g.members]
    seen: list[int] = []
    for g in (*member_of, *additional_gids):
        if g not in seen:
            seen.append(g)
    return ExecUser(uid, gid, tuple(seen), entry.home if entry and entry.home else "/")


def resolve_user(rootfs: str, spec: str) -> ExecUser:
    """Docker's `--user` forms: name, uid, name:group, uid:gid, uid:group... resolved in the rootfs' files.

    A name the rootfs does not know raises NotFound; numeric ids need no entry (as in Docker).
    """
    user_part, _, group_part = spec.partition(":")
    if not user_part:
        raise InvalidArgument(f"invalid user {spec!r}: expected user[:group]")
    passwd = parse_passwd(read_in_root(rootfs, "/etc/passwd") or "")
    group_list = parse_group(read_in_root(rootfs, "/etc/group") or "")
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((p for p in passwd if p.uid == uid), None)
    else:
        entry = next((p for p in passwd if p.name == user_part), None)
        if entry is None:
            raise NotFound(f"unable to find user {user_part}: no matching entries in the rootfs' /etc/passwd")
        uid = entry.uid
    gid = entry.gid if entry else 0
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            grp = next((g for g in group_list if g.name == group_part), None)
            if grp is None:
                raise NotFound(f"unable to find group {group_part}: no matching entries in the rootfs' /etc/group")
            gid = grp.gid
    return exec_user(passwd, group_list, uid, gid, member_groups=not group_part)
