"""Benchmarks: ``python -m task2sim.bench.<stage>`` prints measured ratios (see BENCHMARKS.md)."""
