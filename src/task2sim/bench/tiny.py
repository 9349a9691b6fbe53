"""The tiny complete workflow: its configuration (``tests/tiny_config.yaml``) and a copy of the
workflow's files to run it in. Used by the test suite's tiny runs and by the GPU check
(``tools/gpu_check.sh``), so both run the same workflow at the same size."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

# The workflow's own files, src/ included so that jobs run the code of the checkout; results are
# produced inside the copy.
WORKFLOW_FILES = ("Snakefile", "config.yaml", "study.yaml", "study_finetune.yaml", "rules", "schemas", "envs",
                  "profiles", "docs", "src")
TINY_CONFIG = Path("tests") / "tiny_config.yaml"


def tiny_config(repo: Path) -> dict:
    """The tiny configuration, with the checkout's shared asset cache (a runtime key: built once
    per checkout, it changes no pixel)."""
    cfg = yaml.safe_load((repo / TINY_CONFIG).read_text())
    cfg["render"]["cache_dir"] = str(repo / ".cache" / "assets")
    return cfg


def copy_workflow_files(repo: Path, dest: Path) -> None:
    """The workflow's files of ``repo`` copied into ``dest`` (which may exist)."""
    for name in WORKFLOW_FILES:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dest / name)
