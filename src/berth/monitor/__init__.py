"""berth.monitor."""
