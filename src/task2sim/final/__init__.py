"""The final stage (docs/final.md): what Task2Sim is for, measured. One-shot pre-training for a
task outside the reward table, and the comparison of every method at the reward and final budgets.

- ``choose``: the configuration each method picks per task (Task2Sim's predictions, measured
  selection = the best 5-NN left-one-out on the task's own training split over every reward-budget
  backbone, Random = seeded draws shared by every task, Domain Randomisation = every varied bit on, Domain
  Randomisation with all 8 bits on (the paper's; needs a render outside the reward table, so it is
  scored at the final budget only unless every bit varies), the best single configuration on the
  seen tasks of the reward table by mean reward and by mean per-task z-score, a seen task's from
  the other seen tasks);
- ``score``: one backbone (pre-trained, random-init "scratch", or the real ImageNet
  EfficientNet-Lite0 reference) on several tasks: pooled features once per task, then the 5-NN
  accuracy (docs/algorithms.md, "Reward") and the linear probe of ``train.evaluate`` on those
  features (grid chosen on a validation split of the training set), and optionally the full
  fine-tune (profiles/paper);
- ``report``: the paper's Tables 2/3 (seen and unseen averages per method, evaluation and budget,
  over seeds, with the margins' intervals), its per-task bar charts (Figs. 3/4) and its Fig. 8
  (Task2Sim vs Domain Randomisation against the number of pre-training images).

This module holds what they share: the methods, their labels, the config section, budget names.
It imports no torch (the workflow reads it).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

from ..bits import N_BITS
from ..errors import Task2SimError

# Domain Randomisation as the paper has it: every simulation parameter on.
ALL_ON = "1" * N_BITS
# Methods in the order of the tables; the last two are not simulator configurations.
CONFIG_METHODS = ("task2sim", "measured", "random", "domain_randomisation", "domain_randomisation_all",
                  "best_fixed", "best_fixed_z")
METHODS = CONFIG_METHODS + ("scratch", "imagenet")
LABELS = {"task2sim": "Task2Sim", "measured": "Measured selection (5-NN, train split)", "random": "Random",
          "domain_randomisation": "Domain Randomisation (varied bits)",
          "domain_randomisation_all": "Domain Randomisation (all 8 bits)", "best_fixed": "Best single config (seen)",
          "best_fixed_z": "Best single config by z-score (seen)",
          "scratch": "Scratch (random init)", "imagenet": "ImageNet EfficientNet-Lite0 (reference)"}
EVALUATIONS = ("knn5", "linear", "finetune")
CHOICE_COLUMNS = ("task", "split", "method", "bits")
SCORE_COLUMNS = ("task", "source", "evaluation", "top1", "chosen", "n_train", "n_test", "seconds")


class FinalError(Task2SimError, ValueError):
    """An input of the final stage is missing or inconsistent; the message names it."""


@dataclass
class FinalConfig:
    """The ``final`` config section (defaults: schemas/config.schema.yaml)."""

    classes: int
    images_per_class: int
    epochs: int | None
    final_budget_methods: list[str]
    random_seed: int
    random_draws: int
    selection: str
    evaluations: list[str]
    finetune_at: list[str]
    imagenet_image_size: int
    scaling_images_per_class: list[int]


def budget_evaluations(evaluations: list[str] | tuple[str, ...], finetune_at: list[str] | tuple[str, ...],
                       budget: str) -> list[str]:
    """The evaluations scored at ``budget`` (``reward``, ``ref`` for Scratch and the ImageNet
    reference, or a rendered budget such as ``c32_i180``): ``finetune`` only where
    ``final.finetune_at`` names the budget's kind (always for ``ref``: Scratch)."""
    kind = budget if budget in ("reward", "ref") else "final"
    return [e for e in evaluations if e != "finetune" or kind == "ref" or kind in finetune_at]


def budget_name(classes: int, images_per_class: int) -> str:
    """The ``{budget}`` wildcard of a render size: ``c32_i180`` = 32 classes x 180 images."""
    return f"c{int(classes)}_i{int(images_per_class)}"


def parse_budget(name: str) -> tuple[int, int]:
    try:
        c, i = name.split("_")
        if c[0] != "c" or i[0] != "i":
            raise ValueError
        return int(c[1:]), int(i[1:])
    except (ValueError, IndexError):
        raise FinalError(f"budget {name!r} is not c<classes>_i<images per class>") from None


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError as e:
        raise FinalError(f"{path}: cannot read ({e.strerror})") from None
