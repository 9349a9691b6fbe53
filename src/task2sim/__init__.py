"""task2sim: task-adaptive synthetic pre-training (Task2Sim) and synthetic-to-real fine-tuning (ASG).

The library behind the Snakemake workflow. It never imports snakemake: every stage is a function
taking explicit paths and dataclass configs, and a thin CLI in ``task2sim.cli.<stage>``.
"""

__version__ = "0.1.0"
