"""The snapshotter: layers unpacked once, by chain id, and container snapshots above them.

On disk, under root (e.g. /var/lib/berth/snapshots, mode 0700):
    <n>/fs                  a layer's files, or a container's upper directory   (n: a short id)
    <n>/work                overlayfs work directory of a container snapshot
    layers/<chain hex>.json a committed layer: chain id -> n, parent, diff_id, size   (commit point)
    active/<key>.json       a container snapshot: key -> n, parent chain id
    locks/<chain hex>       one flock per chain id, so concurrent unpacks end with one copy
    locks/key-<key>         one flock per container snapshot key
    lock                    shared by unpack/prepare/remove, exclusive for remove_layer/cleanup
    .tmp-*                  unpacks in progress (or left by a crash: see check/cleanup)

A container snapshot can also be committed as a layer in place (its upper directory already is one).
A layer is extracted into a .tmp- directory, its diff_id checked, the filesystem synced, then the
directory is renamed to <n> and its JSON written atomically: a crash leaves either no layer or a
whole one (an unreferenced <n> or .tmp- directory is garbage that cleanup() removes).
Mounts use paths relative to root (see berth.snapshots.mount) so ~120 layers fit in one page.

May import: berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from berth.errors import Conflict, Corrupt, DigestMismatch, InvalidArgument, NotFound, RuntimeFailure
from berth.oci.digest import Digest, chain_ids
from berth.snapshots.apply import DEFAULT_LIMITS, ApplyResult, Limits, apply_layer
from berth.snapshots.diff import LayerWritten
from berth.snapshots.mount import Mount, apply_mount, overlay_mounts, unmount
from berth.snapshots.records import ActiveSnapshot, LayerInfo, Usage, check_key, load_record, short_id
from berth.snapshots.stream import Compression
from berth.util import linux
from berth.util.atomic import write_json_atomic
from berth.util.locks import file_lock


class Snapshotter:
    def __init__(self, root: Path, limits: Limits = DEFAULT_LIMITS, durable: bool = True) -> None:
        self.root = root
        self._limits, self._durable = limits, durable
        for sub in ("layers", "active", "locks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)    # layer files may be setuid: host users must not reach them

    # -- layers ------------------------------------------------------------------------------
    def has(self, chain_id: Digest) -> bool:
        return self._layer_json(chain_id).exists()

    def get(self, chain_id: Digest) -> LayerInfo:
        try:
            return load_record(self._layer_json(chain_id), LayerInfo.from_json)
        except FileNotFoundError:
            raise NotFound(f"no unpacked layer with chain id {chain_id}") from None

    def layers(self) -> list[LayerInfo]:
        return [load_record(p, LayerInfo.from_json) for p in sorted((self.root / "layers").glob("*.json"))]

    def unpack(self, chain_id: Digest, parent: Digest | None, layer: BinaryIO,
               compression: Compression | None, expected_diff_id: Digest,
               wait_parent: Callable[[], None] | None = None) -> LayerInfo:
        """Unpack one layer on top of parent (None: a base layer), unless it is there already.

        The stream's diff_id must equal expected_diff_id (DigestMismatch otherwise), and chain_id
        must be the chain id of parent + expected_diff_id. Nothing is kept if anything fails.
        A layer's files do not depend on its parent's, so with wait_parent the extraction runs before the
        parent is there (an image's layers unpack in parallel) and wait_parent is called before the commit;
        it raises if the parent will never come.
        """
        want = chain_ids([expected_diff_id])[0] if parent is None else \
            Digest.of(f"{parent} {expected_diff_id}".encode())
        if want != chain_id:
            raise InvalidArgument(f"chain id {chain_id} does not follow from parent {parent} and "
                                  f"diff_id {expected_diff_id} (expected {want})")
        if self.has(chain_id):
            return self.get(chain_id)
        with file_lock(self.root / "lock", shared=True), file_lock(self.root / "locks" / chain_id.hex):
            if self.has(chain_id):
                return self.get(chain_id)      # another unpacker finished while we waited
            if parent is not None and wait_parent is None and not self.has(parent):
                raise NotFound(f"parent layer {parent} of {chain_id} is not unpacked; unpack it first")
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            try:
                result = self._extract(tmp, layer, compression, expected_diff_id)
                if wait_parent is not None:
                    wait_parent()
                    if parent is not None and not self.has(parent):
                        raise NotFound(f"parent layer {parent} of {chain_id} is not unpacked")
                n = self._claim_id()
                os.rename(tmp, self.root / n)   # replaces the empty directory claimed for it
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            info = LayerInfo(chain_id, result.diff_id, parent, n, result.size, result.entries)
            try:
                write_json_atomic(self._layer_json(chain_id), info.to_json(), durable=self._durable)
            except BaseException:
                shutil.rmtree(self.root / n, ignore_errors=True)
                raise
            return info

    def _extract(self, tmp: Path, layer: BinaryIO, compression: Compression | None,
                 expected: Digest) -> ApplyResult:
        fs = tmp / "fs"
        fs.mkdir()
        os.chmod(fs, 0o755)
        result = apply_layer(layer, fs, compression=compression, limits=self._limits, label=str(expected))
        if result.diff_id != expected:
            raise DigestMismatch(f"layer {expected}: its uncompressed content has diff_id {result.diff_id}, "
                                 f"not {expected} as the image config says; the layer blob is corrupt")
        if self._durable:
            self._sync(tmp)                  # every file of the layer, before it becomes visible
        return result

    @staticmethod
    def _sync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            linux.syncfs(fd)
        finally:
            os.close(fd)

    def lowerdirs(self, chain_id: Digest) -> list[Path]:
        """The fs directories of chain_id and its ancestors, top-most first."""
        return [self.root / i / "fs" for i in self._chain(chain_id)]

    def _chain(self, chain_id: Digest | None) -> list[str]:
        ids: list[str] = []
        seen: set[Digest] = set()
        while chain_id is not None:
            if chain_id in seen:
                raise Corrupt(f"snapshot metadata under {self.root} has a parent cycle at {chain_id}")
            seen.add(chain_id)
            info = self.get(chain_id)
            ids.append(info.id)
            chain_id = info.parent
        return ids

    def remove_layer(self, chain_id: Digest) -> None:
        """Remove an unpacked layer; refused while a child layer or a container snapshot uses it."""
        with file_lock(self.root / "lock"):
            info = self.get(chain_id)
            for child in self.layers():
                if child.parent == chain_id:
                    raise Conflict(f"layer {chain_id} is the parent of layer {child.chain_id}; remove that first")
            for snap in self._actives():
                if snap.parent == chain_id:
                    raise Conflict(f"layer {chain_id} is used by container snapshot {snap.key!r}")
            self._layer_json(chain_id).unlink()
            shutil.rmtree(self.root / info.id, ignore_errors=True)
            (self.root / "locks" / chain_id.hex).unlink(missing_ok=True)

    # -- container snapshots -----------------------------------------------------------------
    def prepare(self, key: str, parent: Digest | None) -> ActiveSnapshot:
        """A writable snapshot (upper + work dirs) above parent; parent None gives a plain directory."""
        check_key(key)
        # Shared: preparing a container must not wait for an unrelated pull's unpack. The key's
        # own lock makes a second prepare of the same key see the first one's record.
        with file_lock(self.root / "lock", shared=True), file_lock(self.root / "locks" / f"key-{key}"):
            if self._active_json(key).exists():
                raise Conflict(f"snapshot {key!r} exists already")
            if parent is not None and not self.has(parent):
                raise NotFound(f"no unpacked layer with chain id {parent} to prepare {key!r} on")
            n = self._claim_id()
            try:
                upper = self.root / n / "fs"
                upper.mkdir(mode=0o755)
                # overlayfs shows the upper root's owner and mode as the container's "/": take the image's.
                top = os.stat(self.lowerdirs(parent)[0]) if parent is not None else None
                os.chmod(upper, stat.S_IMODE(top.st_mode) if top else 0o755)
                if top is not None and os.geteuid() == 0:
                    os.chown(upper, top.st_uid, top.st_gid)
                (self.root / n / "work").mkdir(mode=0o700)
                write_json_atomic(self._active_json(key), {"key": key, "id": n,
                                                           "parent": str(parent) if parent else None},
                                  durable=self._durable)
            except BaseException:
                shutil.rmtree(self.root / n, ignore_errors=True)
                raise
        return self.active(key)

    def active(self, key: str) -> ActiveSnapshot:
        check_key(key)

        def parse(raw: dict[str, Any]) -> ActiveSnapshot:
            n = short_id(raw["id"])
            parent = Digest.parse(raw["parent"]) if raw.get("parent") else None
            return ActiveSnapshot(key, n, parent, self.root / n / "fs", self.root / n / "work")

        try:
            return load_record(self._active_json(key), parse)
        except FileNotFoundError:
            raise NotFound(f"no container snapshot {key!r}") from None

    def snapshot_keys(self) -> list[str]:
        """The keys of every container snapshot."""
        return [snap.key for snap in self._actives()]

    def _actives(self) -> list[ActiveSnapshot]:
        return [self.active(p.stem) for p in sorted((self.root / "active").glob("*.json"))]

    def mounts(self, key: str) -> list[Mount]:
        """How to mount snapshot key (pure: nothing is mounted). Paths are relative to Mount.cwd."""
        snap = self.active(key)
        lowers = [f"{i}/fs" for i in self._chain(snap.parent)]
        return overlay_mounts(lowers, f"{snap.id}/fs", f"{snap.id}/work", self.root)

    def mount(self, key: str, target: Path) -> None:
        for m in self.mounts(key):
            try:
                apply_mount(m, target)
            except OSError as exc:
                raise RuntimeFailure(f"cannot mount snapshot {key!r} at {target}: {exc}") from exc

    def unmount(self, target: Path) -> None:
        try:
            unmount(target)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NotFound(f"nothing is mounted at {target}") from exc
            if exc.errno == errno.EBUSY:
                raise Conflict(f"{target} is busy; stop what uses it, then unmount") from exc
            raise RuntimeFailure(f"cannot unmount {target}: {exc}") from exc

    def commit(self, key: str, layer: LayerWritten) -> LayerInfo:
        """Turn container snapshot key (unmounted) into a layer, without unpacking anything.

        layer is what write_diff wrote of its upper directory (the caller keeps that tar as the
        layer blob). The upper directory already holds the layer in overlay form (whiteouts,
        opaque dirs), so, as containerd's overlay snapshotter does, it becomes the layer's
        directory as is. If that chain id is unpacked already, the snapshot is just removed.
        """
        check_key(key)
        with file_lock(self.root / "lock", shared=True), file_lock(self.root / "locks" / f"key-{key}"):
            snap = self.active(key)
            chain_id = layer.diff_id if snap.parent is None else \
                Digest.of(f"{snap.parent} {layer.diff_id}".encode())
            with file_lock(self.root / "locks" / chain_id.hex):
                if not self.has(chain_id):
                    shutil.rmtree(snap.work, ignore_errors=True)
                    if self._durable:
                        self._sync(snap.upper)
                    info = LayerInfo(chain_id, layer.diff_id, snap.parent, snap.id, layer.size, layer.entries)
                    # Forget the snapshot first: a crash in between leaves an unreferenced directory
                    # (cleanup removes it), never one directory claimed by both a layer and a snapshot.
                    self._active_json(key).unlink()
                    write_json_atomic(self._layer_json(chain_id), info.to_json(), durable=self._durable)
                    return info
            self._active_json(key).unlink()
            shutil.rmtree(self.root / snap.id, ignore_errors=True)
            return self.get(chain_id)

    def remove(self, key: str) -> None:
        """Remove a container snapshot and its upper directory (the caller unmounts it first)."""
        check_key(key)
        with file_lock(self.root / "lock", shared=True), file_lock(self.root / "locks" / f"key-{key}"):
            snap = self.active(key)
            self._active_json(key).unlink()
            shutil.rmtree(self.root / snap.id, ignore_errors=True)

    # -- accounting and repair ---------------------------------------------------------------
    def usage(self, ref: Digest | str) -> Usage:
        """Disk usage of a layer (by chain id) or a container snapshot's upper dir (by key)."""
        top = self.root / (self.get(ref).id if isinstance(ref, Digest) else self.active(ref).id) / "fs"
        st = os.lstat(top)
        seen = {(st.st_dev, st.st_ino)}
        size = st.st_blocks * 512
        for dirpath, dirnames, filenames in os.walk(top):
            for name in (*dirnames, *filenames):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:      # hardlinks count once
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_blocks * 512
        return Usage(size, len(seen))

    def check(self) -> list[str]:
        """Inconsistencies, one line each; empty when the store is sound."""
        problems = [f"{p.relative_to(self.root)} is unreadable: {err}" for p, err in self._unreadable()]
        if problems:
            return problems          # the rest of the check needs every record; cleanup() sets them aside
        referenced: set[str] = set()
        known: set[Digest] = set()
        for info in self.layers():
            known.add(info.chain_id)
            referenced.add(info.id)
            if not stat.S_ISDIR(_mode(self.root / info.id / "fs")):
                problems.append(f"layer {info.chain_id}: directory {info.id}/fs is missing")
        for info in self.layers():
            if info.parent is not None and info.parent not in known:
                problems.append(f"layer {info.chain_id}: parent {info.parent} is missing")
        for snap in self._actives():
            referenced.add(snap.id)
            if not stat.S_ISDIR(_mode(snap.upper)) or not stat.S_ISDIR(_mode(snap.work)):
                problems.append(f"snapshot {snap.key!r}: directory {snap.id}/fs or {snap.id}/work is missing")
            if snap.parent is not None and snap.parent not in known:
                problems.append(f"snapshot {snap.key!r}: parent layer {snap.parent} is missing")
        for entry in sorted(os.listdir(self.root)):
            if entry.startswith(".tmp-"):
                problems.append(f"temporary directory {entry} left by an interrupted unpack")
            elif entry.isdigit() and entry not in referenced:
                problems.append(f"directory {entry} belongs to no layer or snapshot")
        return problems

    def cleanup(self) -> list[str]:
        """Remove what interrupted unpacks left behind; returns the names removed.

        Layers whose directory vanished are forgotten, so the next pull unpacks them again.
        Waits for unpacks in progress (they hold the store lock shared).
        """
        removed: list[str] = []
        with file_lock(self.root / "lock"):
            for path, _ in self._unreadable():     # quarantined, not deleted: someone may want to look
                path.rename(path.with_name(path.name + ".corrupt"))
                removed.append(str(path.relative_to(self.root)))
            referenced: set[str] = set()
            for info in self.layers():
                if not stat.S_ISDIR(_mode(self.root / info.id / "fs")):
                    self._layer_json(info.chain_id).unlink()
                    removed.append(f"layers/{info.chain_id.hex}.json")
                else:
                    referenced.add(info.id)
            actives = self._actives()
            referenced.update(s.id for s in actives)
            # Lock files of gone keys and chains: nobody holds them while we hold the store lock.
            keep = {f"key-{s.key}" for s in actives} | {i.chain_id.hex for i in self.layers()}
            for lock in os.listdir(self.root / "locks"):
                if lock not in keep:
                    (self.root / "locks" / lock).unlink(missing_ok=True)
            for entry in sorted(os.listdir(self.root)):
                if entry.startswith(".tmp-") or (entry.isdigit() and entry not in referenced):
                    shutil.rmtree(self.root / entry, ignore_errors=True)
                    removed.append(entry)
        return removed

    def _unreadable(self) -> list[tuple[Path, str]]:
        bad: list[tuple[Path, str]] = []
        for path in sorted((self.root / "layers").glob("*.json")):
            try:
                load_record(path, LayerInfo.from_json)
            except Corrupt as exc:
                bad.append((path, str(exc)))
        for path in sorted((self.root / "active").glob("*.json")):
            try:
                self.active(path.stem)
            except (Corrupt, InvalidArgument) as exc:
                bad.append((path, str(exc)))
        return bad

    # -- paths -------------------------------------------------------------------------------
    def _layer_json(self, chain_id: Digest) -> Path:
        return self.root / "layers" / f"{chain_id.hex}.json"

    def _active_json(self, key: str) -> Path:
        return self.root / "active" / f"{key}.json"

    def _claim_id(self) -> str:
        """A new short directory name, claimed by creating it (empty) under the root."""
        used = [int(e) for e in os.listdir(self.root) if e.isdigit()]
        n = max(used, default=0) + 1
        while True:
            try:
                (self.root / str(n)).mkdir(mode=0o700)
                return str(n)
            except FileExistsError:
                n += 1


def _mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0
