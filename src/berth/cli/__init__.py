"""berth.cli."""
