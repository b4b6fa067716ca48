"""Speed benchmarks for lungseg (CPU engines, MONAI reference, GPU check)."""
