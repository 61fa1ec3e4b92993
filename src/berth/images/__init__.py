"""Images: named references, records, import/load/save, inspect and history, offline base images.
May import: berth.snapshots, berth.content, berth.oci, berth.util, berth.errors."""
