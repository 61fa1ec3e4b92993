"""Image archives: the docker-archive layout (manifest.json + repositories) and the OCI image layout
(oci-layout + index.json + blobs/), read from a stream and written as one archive that is both at once
(like Docker 25+'s `docker save`), so dockerd, skopeo's docker-archive: and oci-archive: all read it.

Reading streams the tar once: every blob-like member is ingested into the content store (verified against its
name when the name is a digest), small JSON documents are kept in memory; what they describe is interpreted after
the stream ends, because `docker save` writes manifest.json last.
May import: berth.content, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, cast

from berth.errors import Corrupt, InvalidArgument, LimitExceeded
from berth.oci.descriptor import Descriptor, Platform
from berth.oci.digest import Digest
from berth.oci.manifest import MAX_MANIFEST_BYTES, Index, Manifest, sniff_media_type
from berth.oci.mediatype import MediaType

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_MEMBERS = 100_000
_DOCUMENTS = {"manifest.json", "index.json", "oci-layout", "repositories"}
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"
_COPY = 1 << 20


class Ingester(Protocol):
    def ingest(self, stream: BinaryIO, expected: Digest | None = None,
               expected_size: int | None = None) -> tuple[Digest, int]: ...


class BlobSource(Protocol):
    def open(self, digest: Digest) -> BinaryIO: ...
    def size(self, digest: Digest) -> int: ...
    def read_bytes(self, digest: Digest, limit: int) -> bytes: ...


class BlobStoreLike(Ingester, BlobSource, Protocol):
    """Loading needs both sides: ingest the archive's blobs, then read its manifests back."""


@dataclass(frozen=True, slots=True)
class ArchivedImage:
    """One image found in an archive, its blobs already in the content store."""
    config: Digest
    layers: tuple[Descriptor, ...]       # blob digests as stored; media types say the compression
    tags: tuple[str, ...]                # as written in the archive (familiar or full names)
    manifest: Digest | None = None       # present for OCI layouts: kept as the image's manifest


@dataclass(slots=True)
class _Scan:
    blobs: dict[str, tuple[Digest, int]] = field(default_factory=dict)  # member path -> (digest, size)
    links: dict[str, str] = field(default_factory=dict)                 # member path -> target path
    documents: dict[str, bytes] = field(default_factory=dict)


def read_archive(stream: BinaryIO, blobs: BlobStoreLike, platform: Platform | None = None,
                 on_blob: Callable[[Digest], None] | None = None) -> list[ArchivedImage]:
    scan = _scan(stream, blobs, on_blob)
    if "manifest.json" in scan.documents:
        return _docker_images(scan)
    if "index.json" in scan.documents:
        return _oci_images(scan, blobs, platform or Platform.host())
    raise InvalidArgument("not an image archive: it has neither manifest.json (docker save) nor index.json "
                          "(OCI layout); to make an image from a root filesystem tar use 'berth import'")


def _scan(stream: BinaryIO, blobs: Ingester, on_blob: Callable[[Digest], None] | None) -> _Scan:
    scan = _Scan()
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*", bufsize=_COPY) as tf:
            for member in tf:
                count += 1
                if count > MAX_MEMBERS:
                    raise LimitExceeded(f"image archive has more than {MAX_MEMBERS} entries")
                name = _clean(member.name)
                if member.issym() or member.islnk():
                    target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name),
                                                                                   member.linkname)
                    scan.links[name] = _clean(target)
                    continue
                if not member.isfile():
                    continue
                data = tf.extractfile(member)
                assert data is not None  # a regular file always has data
                if posixpath.basename(name) in _DOCUMENTS and "/" not in name:
                    if member.size > MAX_DOCUMENT_BYTES:
                        raise LimitExceeded(f"{name} in the archive is {member.size} bytes, over the "
                                            f"{MAX_DOCUMENT_BYTES}-byte limit")
                    scan.documents[name] = data.read()
                    continue
                expected = _digest_from_path(name)
                digest, size = blobs.ingest(cast(BinaryIO, data), expected, member.size)
                scan.blobs[name] = (digest, size)
                if on_blob is not None:
                    on_blob(digest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise Corrupt(f"image archive is not a valid tar stream: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # zlib/lzma errors surface as these in stream mode
        raise Corrupt(f"image archive is corrupt: {exc}") from exc
    return scan


def _clean(name: str) -> str:
    norm = posixpath.normpath("/" + name).lstrip("/")
    return norm


def _digest_from_path(name: str) -> Digest | None:
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256":
        return Digest.parse("sha256:" + parts[2])
    return None


def _resolve(scan: _Scan, path: str, what: str) -> tuple[Digest, int]:
    seen = 0
    name = _clean(path)
    while name in scan.links and seen < 40:
        name, seen = scan.links[name], seen + 1
    try:
        return scan.blobs[name]
    except KeyError:
        raise InvalidArgument(f"image archive names {what} {path!r}, but the archive has no such file") from None


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} in the image archive is not valid JSON: {exc}") from exc


def _docker_images(scan: _Scan) -> list[ArchivedImage]:
    entries = _json(scan.documents["manifest.json"], "manifest.json")
    if not isinstance(entries, list):
        raise InvalidArgument("manifest.json in the image archive must be a list of images")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise InvalidArgument(f"manifest.json entry {i} needs Config and Layers")
        config, _ = _resolve(scan, entry["Config"], "config")
        layers = []
        for path in entry["Layers"]:
            digest, size = _resolve(scan, str(path), "layer")
            # The compression is sniffed when the layer is applied; record it as a plain tar for now.
            layers.append(Descriptor(MediaType.DOCKER_LAYER, digest, size))
        tags = tuple(str(t) for t in entry.get("RepoTags") or ())
        out.append(ArchivedImage(config, tuple(layers), tags))
    return out


def _oci_images(scan: _Scan, blobs: BlobSource, platform: Platform) -> list[ArchivedImage]:
    layout = scan.documents.get("oci-layout")
    if layout is not None:
        version = _json(layout, "oci-layout").get("imageLayoutVersion") if layout else None
        if version != "1.0.0":
            raise InvalidArgument(f"unsupported OCI image layout version {version!r}; expected 1.0.0")
    index = Index.from_json(_json(scan.documents["index.json"], "index.json"))
    store = {d: p for p, (d, _) in scan.blobs.items()}
    out = []
    for desc in index.manifests:
        names = [n for n in (desc.annotations.get(CONTAINERD_NAME_ANNOTATION),
                             desc.annotations.get(REF_NAME_ANNOTATION)) if n]
        out.append(_oci_image(desc, blobs, store, platform, tuple(names[:1])))
    return out


def _oci_image(desc: Descriptor, blobs: BlobSource, store: Mapping[Digest, str], platform: Platform,
               tags: tuple[str, ...]) -> ArchivedImage:
    for _ in range(4):  # an index may point at an index (e.g. a multi-platform image)
        if desc.digest not in store:
            raise InvalidArgument(f"index.json names {desc.digest}, but the archive has no such blob")
        data = blobs.read_bytes(desc.digest, MAX_MANIFEST_BYTES)
        if sniff_media_type(data).is_index:
            desc = Index.parse(data).select(platform)
            continue
        manifest = Manifest.parse(data)
        for layer in manifest.layers:
            if layer.digest not in store:
                raise InvalidArgument(f"manifest {desc.digest} names layer {layer.digest}, which the archive lacks")
        if manifest.config.digest not in store:
            raise InvalidArgument(f"manifest {desc.digest} names config {manifest.config.digest}, which the "
                                  f"archive lacks")
        return ArchivedImage(manifest.config.digest, manifest.layers, tags, desc.digest)
    raise InvalidArgument("image index nesting is too deep")


def write_archive(out: BinaryIO, images: Sequence[SavedImage], blobs: BlobSource) -> None:
    """One archive readable as docker-archive and as an OCI layout."""
    written: set[Digest] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_COPY) as tf:
        setattr(tf, "copybufsize", _COPY)  # noqa: B010 - an attribute typeshed does not declare
        _add_dir(tf, "blobs")
        _add_dir(tf, "blobs/sha256")
        for image in images:
            for digest in (*image.layers, image.config, image.manifest):
                if digest in written:
                    continue
                written.add(digest)
                info = tarfile.TarInfo(f"blobs/sha256/{digest.hex}")
                info.size = blobs.size(digest)
                info.mode = 0o644
                with blobs.open(digest) as f:
                    tf.addfile(info, f)
        index = {"schemaVersion": 2, "mediaType": str(MediaType.OCI_INDEX), "manifests": [
            dict(Descriptor(image.manifest_media_type, image.manifest, blobs.size(image.manifest)).to_json(),
                 **({"annotations": {CONTAINERD_NAME_ANNOTATION: tag, REF_NAME_ANNOTATION: tag.rpartition(":")[2]}}
                    if (tag := next(iter(image.full_tags), "")) else {}))
            for image in images]}
        manifest_json = [{"Config": f"blobs/sha256/{image.config.hex}",
                          "RepoTags": list(image.familiar_tags) or None,
                          "Layers": [f"blobs/sha256/{d.hex}" for d in image.layers]} for image in images]
        repositories: dict[str, dict[str, str]] = {}
        for image in images:
            top = image.layers[-1].hex if image.layers else image.config.hex
            for tag in image.familiar_tags:
                repo, _, t = tag.rpartition(":")
                repositories.setdefault(repo, {})[t] = top
        _add_bytes(tf, "index.json", json.dumps(index).encode())
        _add_bytes(tf, "manifest.json", json.dumps(manifest_json).encode())
        _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            _add_bytes(tf, "repositories", json.dumps(repositories).encode())


@dataclass(frozen=True, slots=True)
class SavedImage:
    manifest: Digest
    manifest_media_type: MediaType
    config: Digest
    layers: tuple[Digest, ...]
    full_tags: tuple[str, ...]
    familiar_tags: tuple[str, ...]


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tf.addfile(info)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))
