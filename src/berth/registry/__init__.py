"""berth.registry."""
