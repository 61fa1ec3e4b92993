"""berth.snapshots: layers unpacked once by chain id, and overlay snapshots for containers.

apply    berth's own layer extractor (tar stream -> directory, overlay whiteouts, limits, diff_id)
header   fast path for plain one-block tar headers (tarfile parses the rest)
stream   decompression (gzip, zstd, plain), hashing and limits of a layer stream
diff     directories back into layer tars (overlay upper dirs, whole rootfs trees)
mount    overlay mount descriptions (pure) and the one function that mounts them
records  what is kept on disk about layers and container snapshots
store    the Snapshotter: unpack/prepare/mounts/commit/remove/check/cleanup under <root>/snapshots

May import: berth.oci, berth.util, berth.errors (and zstandard, isal).
"""
