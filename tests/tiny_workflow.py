"""A tiny configuration of the whole workflow (every stage, a few seconds of work per job), and a
way to see the workflow's rules as Snakemake parsed them. Used by the SLURM, report, trace and
reliability tests (the one tiny configuration of the test suite).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import REPO, Workflow


def tiny_config() -> dict:
    """Every stage on: 3 tasks (2 seen), 2 configurations, the noise stage at one more seed, a
    linear probe of one backbone, Task2Vec, the controller and ASG on one digit target."""
    return {
        "seed": 0,
        "device": "cpu",
        "tasks": {"max_train": 40, "max_test": 20, "items": {
            "digits8": {"source": "digits8", "seen": True},
            "mnist5k": {"source": "mnist5k", "seen": True},
            "faces": {"source": "faces", "seen": False}}},
        # the shared asset cache (a runtime key: it changes no pixel), built once per checkout
        "render": {"vary_bits": [7], "classes": 4, "meshes_per_class": 2, "images_per_class": 8,
                   "image_size": 32, "blur_passes": 2, "cache_dir": str(REPO / ".cache" / "assets")},
        "pretrain": {"model": "t2s_resnet18_w8", "epochs": 1, "warmup_epochs": 0, "batch_size": 16},
        "noise": {"configs": ["00000000"], "seeds": [1]},
        "evaluate": {"methods": ["linear"], "sources": ["00000001"],
                     "linear": {"epochs": 2, "lrs": [0.1], "weight_decays": [0.0], "batch_sizes": [16]}},
        "task2vec": {"input_size": 32, "samples": 32, "batch_size": 16, "head_epochs": 1},
        "policy": {"n_seeds": 1, "epochs": 20, "hidden": 16},
        # final budget: 4 classes x 16 images, twice the reward budget's 4 x 8 (the default 32 x 180
        # would be most of the tiny run's time)
        "final": {"classes": 4, "images_per_class": 16, "scaling_images_per_class": [8, 16, 32]},
        "asg": {"targets": ["digits8"], "source_images_per_class": 4, "source_meshes_per_class": 1,
                "source_image_size": 32, "input_size": 32, "probe_size": 32, "epochs": 1,
                "methods": ["all_lr", "asg"], "policy_episodes": 1, "policy_episode_epochs": 1},
    }


def write_tiny_config(wf: Workflow) -> None:
    wf.write_config(tiny_config())


# Appended to a copy's Snakefile: at parse time, every rule's name, whether it runs on the submit
# host under a cluster executor, and its declared resources (threads are `_cores`); and the final
# targets (`rule all`'s input).
_DUMP = '''

import json as _json

_value = lambda res: None if res.is_evaluable() else res.value
with open({path!r}, "w") as _f:
    _json.dump({{"final_targets": FINAL_TARGETS,
                "rules": {{r.name: {{"local": r.name in workflow._localrules or r.norun,
                                   "resources": {{k: _value(v) for k, v in r.resources.items()}}}}
                          for r in workflow.rules}}}}, _f)
'''


def parse_workflow(wf: Workflow) -> dict:
    """{"rules": {rule: {"local": bool, "resources": {name: value}}}, "final_targets": [path]} of
    the copy's workflow under its config."""
    out = wf.root / ".workflow.json"
    snakefile = wf.root / "Snakefile"
    original = snakefile.read_text()
    snakefile.write_text(original + _DUMP.format(path=str(out)))
    try:
        res = wf.run("--list-rules")
        assert res.returncode == 0, res.stdout + res.stderr
        return json.loads(out.read_text())
    finally:
        snakefile.write_text(original)
        out.unlink(missing_ok=True)


def workflow_rules(wf: Workflow) -> dict[str, dict]:
    return parse_workflow(wf)["rules"]


def read_profile(root: Path, name: str) -> dict:
    return yaml.safe_load((root / "profiles" / name / "config.yaml").read_text())
