"""Build image archives in tests: docker-archive layouts with chosen layers, configs and tags."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence


def tar_bytes(entries: Sequence[tuple[str, bytes | None, dict[str, object]]]) -> bytes:
    """entries: (name, data or None for a dir, extra TarInfo attributes such as type/linkname/mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None and "type" not in extra:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            for key, value in extra.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(layers: Sequence[bytes], tags: Sequence[str] = ("test:1",), diff_ids: Sequence[str] | None = None,
                   cmd: Sequence[str] = ("sh",), extra_config: dict[str, object] | None = None) -> bytes:
    """A `docker save`-style archive of one image whose layers are the given (uncompressed) tars."""
    ids = list(diff_ids) if diff_ids is not None else [sha(layer) for layer in layers]
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ids},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))]}
    config.update(extra_config or {})
    config_bytes = json.dumps(config).encode()
    entries: list[tuple[str, bytes | None, dict[str, object]]] = []
    layer_paths = []
    for layer in layers:
        path = f"{hashlib.sha256(layer).hexdigest()}/layer.tar"
        entries.append((path.split("/")[0], None, {}))
        entries.append((path, layer, {}))
        layer_paths.append(path)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    entries.append((config_name, config_bytes, {}))
    manifest = [{"Config": config_name, "RepoTags": list(tags), "Layers": layer_paths}]
    entries.append(("manifest.json", json.dumps(manifest).encode(), {}))
    return tar_bytes(entries)


def simple_layer(files: dict[str, bytes]) -> bytes:
    return tar_bytes([(name, data, {"mode": 0o644}) for name, data in files.items()])
