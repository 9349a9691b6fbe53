"""Evaluate a backbone on a downstream task (linear probe, fine-tune, or scratch): one JSON.

Usage::

    python -m task2sim.cli.evaluate --method linear --source 10000001 --task digits8 \
        --model results/pretrain/10000001/model.pt --task-h5 results/tasks/digits8/data.h5 \
        --config '{"epochs": 30, "lrs": [0.01, 0.1], "val_fraction": 0.3}' --reward '{"amp": true}' \
        --seed 0 --out results/evaluate/linear/10000001/digits8.json

``--config`` is ``evaluate.<method>`` plus ``evaluate.val_fraction``. ``--reward`` (linear only;
default ``{}``, the schema's) is the ``reward`` section: its ``amp`` and ``batch_size`` say how the
probe's features are computed, as for the final stage's linear column. The architecture and input
size come from the checkpoint; ``scratch`` has none and takes ``--model-name`` and
``--image-size`` instead. The provenance record goes beside ``--out``. Bad input prints one line
``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse

from . import add_config_args, add_runtime_args, json_object_arg, stage_config, stage_main, stage_parser
from ..io import write_json
from ..provenance import Provenance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "evaluate")
    p.add_argument("--method", required=True, choices=("linear", "finetune", "scratch"))
    p.add_argument("--source", required=True, help="name of the backbone's source (a config string, ...)")
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--task-h5", required=True, help="the task's data.h5")
    p.add_argument("--model", help="model.pt of the backbone (not for scratch)")
    p.add_argument("--model-name", help="scratch only: timm model name")
    p.add_argument("--image-size", type=int, help="scratch only: input size")
    p.add_argument("--out", required=True, help="result JSON to write")
    p.add_argument("--reward", default="{}",
                   help="linear only: the config's reward section as a JSON object (the features' precision)")
    add_config_args(p, "evaluate.<method>")
    add_runtime_args(p)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    from ..backbones.models import backbone_cfg
    from ..config import config_from_dict
    from ..reward.knn import RewardConfig
    from ..train.evaluate import EvalConfig, evaluate

    if args.method == "scratch":
        if args.model or not (args.model_name and args.image_size):
            raise ValueError("scratch takes --model-name and --image-size, and no --model")
        name, size = args.model_name, args.image_size
    else:
        if not args.model or args.model_name or args.image_size:
            raise ValueError(f"{args.method} takes --model (which says its architecture and size) only")
        info = backbone_cfg(args.model)
        name, size = info["architecture"], int(info["input_size"][-1])
    cfg = stage_config(args, EvalConfig, f"evaluate.{args.method}", method=args.method, image_size=size,
                       seed=args.seed, device=args.device)
    reward = json_object_arg(args.reward, "--reward")
    if reward and args.method != "linear":
        raise ValueError(f"--reward is for the linear probe's features; {args.method} takes none")
    rw = config_from_dict(RewardConfig, reward, "reward")
    rec = Provenance.start("evaluate", cfg, seeds={"seed": args.seed},
                           inputs=[p for p in (args.model, args.task_h5) if p],
                           source=args.source, task=args.task, model_name=name, reward=reward)
    r = evaluate(name, args.model, args.task_h5, cfg, progress=not args.no_progress, feature_amp=rw.amp,
                 feature_batch_size=rw.batch_size)
    out = {"method": args.method, "source": args.source, "task": args.task, "model_name": name, **r}
    write_json(args.out, out)
    rec.finish([args.out])
    return {k: out[k] for k in ("method", "source", "task", "test_top1", "chosen")}


main = stage_main(run, parse_args, __name__)
