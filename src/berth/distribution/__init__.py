"""berth.distribution."""
