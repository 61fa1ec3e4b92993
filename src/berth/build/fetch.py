"""ADD's two extras: a URL source (downloaded only because the Dockerfile names it) and a local tar archive
(plain, gzip, bzip2, xz or zstd), which ADD extracts instead of copying.

Archives are unpacked by berth's layer extractor (berth.snapshots.apply: no name leaves the target, no symlink
is followed out of it, hardlinks stay inside) into an empty directory, then copied into the image.
A downloaded file is named after the URL's last path segment (or dest's name when dest is not a directory),
gets mode 0600 and, as Docker does, the mtime of the response's Last-Modified header.

May import: berth.images.compression, berth.snapshots, berth.errors.
"""

from __future__ import annotations

import email.utils
import os
import posixpath
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from berth.errors import InvalidArgument, LimitExceeded, Unavailable
from berth.images.compression import decompressed, sniff
from berth.snapshots.apply import Limits, apply_layer
from berth.snapshots.stream import Compression

MAX_DOWNLOAD = 8 << 30
_TIMEOUT = 60.0


def fetch_url(url: str, tmp: Path, dest: str) -> Path:
    """Download url into tmp; returns the file, named as the copy into the image should be."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidArgument(f"invalid URL {url!r}")
    name = posixpath.basename(parsed.path.rstrip("/"))
    if not name and not dest.endswith("/"):
        name = posixpath.basename(dest.rstrip("/"))
    if not name or name in (".", ".."):
        raise InvalidArgument(f"cannot determine a filename from the URL {url}: give a destination file name")
    out = tmp / name
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "berth"}),
                                    timeout=_TIMEOUT) as resp, open(out, "wb") as f:
            total = 0
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > MAX_DOWNLOAD:
                    raise LimitExceeded(f"{url} is larger than the {MAX_DOWNLOAD}-byte limit for ADD")
                f.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"failed to GET {url} with status {exc.code}: {exc.reason}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise Unavailable(f"failed to download {url}: {exc}") from exc
    os.chmod(out, 0o600)
    if modified:
        try:
            when = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(out, (when, when))
        except (TypeError, ValueError):
            pass
    return out


def is_archive(path: Path) -> bool:
    """A regular file whose (decompressed) start is a valid tar header."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(6)
        if not head:
            return False
        f.seek(0)
        kind = sniff(head)
        try:
            with decompressed(f) as plain:
                block = plain.read(512)
        except (InvalidArgument, OSError, EOFError):
            return False
    if len(block) < 512 or (kind == "none" and block == bytes(512)):
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def unpack_archive(path: Path, target: Path) -> None:
    with open(path, "rb") as f, decompressed(f) as plain:
        apply_layer(plain, target, compression=Compression.NONE, limits=Limits(max_bytes=MAX_DOWNLOAD * 4),
                    label=f"ADD {path.name}", same_owner=True)
