"""berth.snapshots: layers unpacked once by chain id, and overlay snapshots for containers.

apply   berth's own layer extractor (tar stream -> directory, overlay whiteouts, limits, diff_id)
stream  decompression (gzip, zstd, plain), hashing and limits of a layer stream
diff    directories back into layer tars (overlay upper dirs, whole rootfs trees)
mount   overlay mount descriptions (pure) and the one function that mounts them
store   the Snapshotter: unpack/prepare/mounts/remove/check/cleanup under <root>/snapshots

May import: berth.oci, berth.util, berth.errors (and zstandard).
"""
