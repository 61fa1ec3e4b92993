"""berth's benchmarks: the same scenario under berthd and a real dockerd on the same machine, in the same run.

Speed targets are ratios of medians (berth/docker), never absolute times. See bench/README.md.
"""
