"""berth.api."""
