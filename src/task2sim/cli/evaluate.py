"""Evaluate a backbone on a downstream task (linear probe, fine-tune, or scratch): one JSON.

Usage::

    python -m task2sim.cli.evaluate --method linear --source 10000001 --task digits8 \\
        --model results/pretrain/10000001/model.pt --task-h5 results/tasks/digits8/data.h5 \\
        --params '{"epochs": 30, "lrs": [0.01, 0.1]}' --seed 0 \\
        --out results/evaluate/linear/10000001/digits8.json

The model name and image size come from the ``meta.json`` beside ``--model`` unless given.
``scratch`` needs no ``--model`` but a ``--model-name``. Provenance goes to ``<out stem>.meta.json``.
Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import json_object_arg
from ..io import write_json
from ..provenance import Provenance
from ..train.data import DataError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m task2sim.cli.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True, choices=("linear", "finetune", "scratch"))
    p.add_argument("--source", required=True, help="name of the backbone's source (a config string, ...)")
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--model", help="model.pt of the backbone (not for scratch)")
    p.add_argument("--model-name", help="timm model name (default: from meta.json beside --model)")
    p.add_argument("--image-size", type=int, help="input size (default: the backbone's training size)")
    p.add_argument("--task-h5", required=True, help="the task's data.h5")
    p.add_argument("--params", default="{}", help="JSON object of EvalConfig keys (epochs, lrs, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--out", required=True, help="result JSON to write")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    import torch

    from ..train.evaluate import EvalConfig, evaluate
    from ..train.models import backbone_info

    if args.threads:
        torch.set_num_threads(args.threads)
    params = json_object_arg(args.params, "--params")
    info: dict = {}
    if args.model:
        model = Path(args.model)
        if not model.is_file():
            raise DataError(f"{model}: no such model file")
        info = backbone_info(model)
    elif args.method != "scratch":
        raise ValueError(f"--model is required for method {args.method}")
    name = args.model_name or info.get("model_name")
    size = args.image_size or info.get("image_size")
    if not name or not size:
        raise ValueError("cannot tell the model name / image size: pass --model-name and --image-size")
    known = set(EvalConfig.__dataclass_fields__) - {"method", "image_size", "seed", "device"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"--params: unknown key(s) {', '.join(unknown)}")
    cfg = EvalConfig(method=args.method, image_size=int(size), seed=args.seed, device=args.device, **params)
    prov = Provenance.start("evaluate", params={**vars(args), "model_name": name, "image_size": size},
                            seeds={"seed": args.seed},
                            inputs=[p for p in (args.model, args.task_h5) if p])
    r = evaluate(name, args.model if args.method != "scratch" else None, args.task_h5, cfg,
                 progress=not args.no_progress)
    out = {"method": args.method, "source": args.source, "task": args.task, "model_name": name, **r}
    write_json(args.out, out)
    prov.finish(Path(args.out).with_suffix(".meta.json"), outputs=[args.out])
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        out = run(args)
    except (DataError, ValueError, RuntimeError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: out[k] for k in ("method", "source", "task", "test_top1", "chosen")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
