"""Command-line entry points, one module per heavy stage: ``python -m task2sim.cli.<stage>``.

Each has ``main(argv=None) -> int`` so tests call it directly; rules call it from ``shell:``.
"""
