"""The moons training demo (``python -m benchmarks.demo``), its datasets and the benchmark suite."""
