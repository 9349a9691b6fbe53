"""The conventions every stage follows, checked over the whole package so that new stages keep them:
defaults only in the schema, one CLI shape, provenance records from one helper, safe loading."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import task2sim.cli
from task2sim.config import ConfigError, config_from_dict, section_defaults, section_schema
from task2sim.render.dataset import RenderConfig
from task2sim.asg.train import ASGConfig
from task2sim.final import FinalConfig
from task2sim.policy.stage import PolicyConfig
from task2sim.reward.knn import RewardConfig
from task2sim.task2vec import Task2VecConfig
from task2sim.tasks.prepare import TaskSettings
from task2sim.train.evaluate import EvalConfig
from task2sim.train.pretrain import PretrainConfig

SRC = Path(task2sim.__file__).resolve().parent if (task2sim := importlib.import_module("task2sim")) else None

# (dataclass, schema section, values for the fields that are not config keys)
STAGE_CONFIGS = [
    (PretrainConfig, "pretrain", {"seed": 0, "device": "cpu"}),
    (RenderConfig, "render", {}),
    (RewardConfig, "reward", {}),
    (EvalConfig, "evaluate.linear", {"method": "linear", "image_size": 32, "seed": 0, "device": "cpu",
                                     "val_fraction": 0.3}),
    (TaskSettings, "$defs.task", {"source": "digits8", "max_train": 1, "max_test": 1, "test_fraction": 0.3}),
    (Task2VecConfig, "task2vec", {"seed": 0, "device": "cpu"}),
    (PolicyConfig, "policy", {"seed": 0}),
    (ASGConfig, "asg", {"device": "cpu"}),
    (FinalConfig, "final", {}),
]


@pytest.mark.parametrize("cls,section,extra", STAGE_CONFIGS, ids=[s for _, s, _ in STAGE_CONFIGS])
def test_schema_defaults_are_the_only_defaults(cls, section, extra):
    keys = set(section_schema(section).get("properties", {}))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in set(section_defaults(section)) & set(fields):
        f = fields[name]
        assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, (
            f"{cls.__name__}.{name} mirrors the schema default; defaults live in the schema only")
    data = {k: v for k, v in extra.items() if k in keys}
    cfg = config_from_dict(cls, data, section, **{k: v for k, v in extra.items() if k not in keys})
    for name, value in section_defaults(section).items():
        if name in fields and name not in data:
            got = getattr(cfg, name)
            assert (list(got) if isinstance(got, tuple) else got) == value, name


def test_unknown_keys_and_bad_values_fail_in_one_line():
    with pytest.raises(ConfigError, match=r"^pretrain: unknown key 'epoch' \(allowed: "):
        config_from_dict(PretrainConfig, {"epoch": 3}, "pretrain", seed=0, device="cpu")
    with pytest.raises(ConfigError, match=r"^reward.k: 0 is less than the minimum of 1$"):
        config_from_dict(RewardConfig, {"k": 0}, "reward")
    with pytest.raises(ConfigError, match="unknown key 'seed'"):  # extra fields are not config keys
        config_from_dict(PretrainConfig, {"seed": 1}, "pretrain", seed=0, device="cpu")


def _cli_modules():
    return [m.name for m in pkgutil.iter_modules(task2sim.cli.__path__)]


@pytest.mark.parametrize("name", _cli_modules())
def test_every_stage_cli_runs_through_stage_main(name):
    mod = importlib.import_module(f"task2sim.cli.{name}")
    assert mod.main.__qualname__ == "stage_main.<locals>.main", f"cli.{name} has its own main"
    assert callable(mod.parse_args) and callable(mod.run)


def _sources():
    return sorted(SRC.rglob("*.py"))


def test_only_the_provenance_module_names_record_files():
    hits = [f"{p.relative_to(SRC)}:{i}" for p in _sources() if p.name != "provenance.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if "meta.json" in line]
    assert hits == [], "provenance records are named by task2sim.provenance only: " + ", ".join(hits)


def test_the_imagenet_statistics_are_written_once():
    """One place for the ImageNet mean and std (task2sim.backbones.preprocess); every other module
    imports them or reads a network's pretrained_cfg through ``normalisation``."""
    home = SRC / "backbones" / "preprocess.py"
    hits = [f"{p.relative_to(SRC)}:{i}" for p in _sources() if p != home
            for i, line in enumerate(p.read_text().splitlines(), 1) if "0.485" in line or "0.229" in line]
    assert hits == [], "ImageNet statistics written outside task2sim.backbones.preprocess: " + ", ".join(hits)


def _task2sim_imports(path: Path) -> set[str]:
    """The task2sim modules ``path`` imports (at any depth of the file), as dotted names."""
    import ast

    pkg = ["task2sim", *path.relative_to(SRC).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found |= {mod} if node.module else {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("task2sim.")}


# Who may not import whom: backbones/ sits below every stage; training and rewards do not know
# each other (both use backbones/).
_LAYERS = {"backbones": ("train", "reward", "policy", "asg", "final", "cli", "task2vec", "render"),
           "train": ("reward",), "reward": ("train",)}


def test_backbones_sit_below_every_stage():
    bad = []
    for p in _sources():
        room = p.relative_to(SRC).parts[0].removesuffix(".py")
        for mod in _task2sim_imports(p):
            if mod.split(".")[1] in _LAYERS.get(room, ()):
                bad.append(f"{p.relative_to(SRC)} imports {mod}")
    assert bad == [], "; ".join(bad)


def test_every_torch_load_is_weights_only():
    bad = []
    for p in _sources():
        for m in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", p.read_text()):
            if "weights_only=True" not in m.group(0):
                bad.append(f"{p.relative_to(SRC)}: {m.group(0)[:60]}")
    assert bad == []
