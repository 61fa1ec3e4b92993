"""berth.snapshots."""
