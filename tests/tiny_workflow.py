"""The tiny configuration of the whole workflow (tests/tiny_config.yaml), and a way to see the
workflow's rules as Snakemake parsed them. Used by the SLURM, report, trace and
reliability tests (the one tiny configuration of the test suite).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import REPO, Workflow

from task2sim.bench.tiny import tiny_config as bench_tiny_config


def tiny_config() -> dict:
    """Every stage on at a few seconds per job (tests/tiny_config.yaml says what it holds)."""
    return bench_tiny_config(REPO)


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
