"""5-NN rewards: one (backbone, task) pair, or the aggregate table of all pairs.

Usage::

    python -m task2sim.cli.reward knn --model results/pretrain/10000001/model.pt --bits 10000001 \\
        --task digits8 fashion --task-h5 results/tasks/{digits8,fashion}/data.h5 \\
        --out results/rewards/10000001/{digits8,fashion}.json \\
        --features results/features/10000001/{digits8,fashion}.npz

    python -m task2sim.cli.reward aggregate --tsv results/rewards/table.tsv \\
        --png results/rewards/table.png results/rewards/*/*.json

``knn`` scores one backbone on one or more tasks (``--task``, ``--task-h5``, ``--out`` and
``--features`` are parallel lists): the backbone is loaded once, and the ~5 s of torch/timm
start-up is paid once per backbone instead of once per task. It reads the model name and training image size from the ``meta.json`` beside ``model.pt``
(``--model-name`` / ``--image-size`` override) and writes the reward JSON (docs/FORMATS.md) plus
its provenance ``<out stem>.meta.json``. Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from ..bits import validate_bits
from ..io import write_json
from ..provenance import Provenance
from ..reward_db import RewardTableError, write_reward_db, write_table_tsv
from ..train.data import DataError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m task2sim.cli.reward", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("knn", help="5-NN reward of one backbone on one task")
    k.add_argument("--model", required=True, help="model.pt (plain state dict) of a pre-trained backbone")
    k.add_argument("--model-name", help="timm model name (default: from meta.json beside --model)")
    k.add_argument("--image-size", type=int, help="feature image size (default: the backbone's training size)")
    k.add_argument("--task-h5", required=True, nargs="+", help="each task's data.h5")
    k.add_argument("--bits", required=True, help="config string of the backbone")
    k.add_argument("--task", required=True, nargs="+", help="task ids")
    k.add_argument("--out", required=True, nargs="+", help="reward JSON to write, one per task")
    k.add_argument("--features", nargs="+",
                   help="feature caches (.npz), one per task, reused when model and task are unchanged")
    k.add_argument("--k", type=int, default=5, help="neighbours that vote")
    k.add_argument("--temperature", type=float, default=0.07, help="vote weight exp(sim / T)")
    k.add_argument("--batch-size", type=int, default=256, help="feature extraction batch")
    k.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    k.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    a = sub.add_parser("aggregate", help="table.tsv (+ heatmap, + published-layout JSON) from reward JSONs")
    a.add_argument("inputs", nargs="+", help="reward JSON files")
    a.add_argument("--tsv", required=True, help="table.tsv to write (task bits knn5)")
    a.add_argument("--png", help="heatmap to write")
    a.add_argument("--reward-db", help="also write the table in the published reward_db.json layout")
    return p.parse_args(argv)


def run_knn(args: argparse.Namespace) -> dict:
    import torch

    from ..train.knn import compute_reward, feature_model
    from ..train.models import backbone_info

    if args.threads:
        torch.set_num_threads(args.threads)
    bits = validate_bits(args.bits)
    model = Path(args.model)
    if not model.is_file():
        raise DataError(f"{model}: no such model file")
    info = backbone_info(model)
    name = args.model_name or info.get("model_name")
    size = args.image_size or info.get("image_size")
    if not name or not size:
        raise DataError(f"{model.parent / 'meta.json'}: cannot tell model name / image size; "
                        f"pass --model-name and --image-size")
    n = len(args.task)
    if len(args.task_h5) != n or len(args.out) != n or (args.features and len(args.features) != n):
        raise ValueError(f"--task ({n}), --task-h5 ({len(args.task_h5)}), --out ({len(args.out)})"
                         f"{' and --features (%d)' % len(args.features) if args.features else ''}"
                         " must have one entry per task")
    net = feature_model(name, model)
    results = []
    for i, (task, task_h5, out_path) in enumerate(zip(args.task, args.task_h5, args.out)):
        features = args.features[i] if args.features else None
        params = {**vars(args), "task": task, "task_h5": task_h5, "out": out_path, "features": features,
                  "model_name": name, "image_size": size}
        prov = Provenance.start("reward", params=params, inputs=[model, task_h5])
        t0 = time.perf_counter()
        r = compute_reward(name, model, task_h5, int(size), k=args.k, temperature=args.temperature,
                           cache=features, batch_size=args.batch_size, device=args.device, model=net)
        out = {"bits": bits, "task": task, "knn5_top1": r["knn5_top1"], "k": r["k"],
               "temperature": r["temperature"], "feature_dim": r["feature_dim"], "n_train": r["n_train"],
               "n_test": r["n_test"]}
        prov.finish(Path(out_path).with_suffix(".meta.json"),
                    outputs=[out_path] + ([features] if features else []),
                    extra={**r, "seconds": round(time.perf_counter() - t0, 3), "model_name": name})
        write_json(out_path, out)  # last: the JSON (the rule's main output) exists only when all is done
        print(json.dumps(out), flush=True)
        results.append(out)
    return {"scored": len(results)}


def run_aggregate(args: argparse.Namespace) -> dict:
    table: dict[str, dict[str, float]] = {}
    for p in args.inputs:
        if str(p).endswith(".meta.json"):  # provenance sidecars match the same shell globs
            continue
        try:
            rec = json.loads(Path(p).read_text())
            table.setdefault(rec["task"], {})[validate_bits(rec["bits"])] = float(rec["knn5_top1"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise RewardTableError(f"{p}: not a reward JSON ({e})") from None
    table = {t: table[t] for t in sorted(table)}
    write_table_tsv(table, args.tsv)
    if args.reward_db:
        write_reward_db(table, args.reward_db)
    if args.png:
        from ..reward_plot import plot_reward_heatmap
        plot_reward_heatmap(table, args.png)
    return {"tasks": len(table), "pairs": sum(len(r) for r in table.values())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        out = run_knn(args) if args.command == "knn" else run_aggregate(args)
    except (DataError, RewardTableError, ValueError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command == "aggregate":
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
