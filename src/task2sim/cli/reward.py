"""5-NN rewards: one backbone on several tasks, or the aggregate table of all pairs.

Usage::

    python -m task2sim.cli.reward knn --model results/pretrain/10000001/model.pt --bits 10000001 \
        --task digits8 fashion --task-h5 results/tasks/{digits8,fashion}/data.h5 \
        --out results/rewards/10000001/{digits8,fashion}.json \
        --features results/features/10000001/{digits8,fashion}.npz \
        --config '{"k": 5, "temperature": 0.07}' --runtime '{"batch_size": 256}'

    python -m task2sim.cli.reward aggregate --tsv results/rewards/table.tsv \
        --png results/rewards/table.png results/rewards/*/*.json

``knn`` scores one backbone on one or more tasks (``--task``, ``--task-h5``, ``--out`` and
``--features`` are parallel lists): the backbone is loaded once, and the ~5 s of torch/timm
start-up is paid once per backbone instead of once per task. The model's architecture and
training image size come from the checkpoint itself. Each reward JSON (docs/FORMATS.md) gets its
provenance record. Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from . import add_config_args, add_runtime_args, stage_config, stage_main, stage_parser
from ..bits import validate_bits
from ..io import write_json
from ..provenance import Provenance, is_record
from ..reward.table import RewardTableError, write_reward_db, write_table_tsv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "reward")
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("knn", help="5-NN reward of one backbone on each task")
    k.add_argument("--model", required=True, help="model.pt of a pre-trained backbone")
    k.add_argument("--bits", required=True, help="config string of the backbone")
    k.add_argument("--task", required=True, nargs="+", help="task ids")
    k.add_argument("--task-h5", required=True, nargs="+", help="each task's data.h5")
    k.add_argument("--out", required=True, nargs="+", help="reward JSON to write, one per task")
    k.add_argument("--features", nargs="+",
                   help="feature caches (.npz), one per task, reused when model and task are unchanged")
    add_config_args(k, "reward", runtime=True)
    add_runtime_args(k, seed=False)
    a = sub.add_parser("aggregate", help="table.tsv (+ heatmap, + published-layout JSON) from reward JSONs")
    a.add_argument("inputs", nargs="+", help="reward JSON files")
    a.add_argument("--tsv", required=True, help="table.tsv to write (task bits knn5)")
    a.add_argument("--png", help="heatmap to write")
    a.add_argument("--reward-db", help="also write the table in the published reward_db.json layout")
    return p.parse_args(argv)


def run_knn(args: argparse.Namespace) -> dict:
    from ..reward.knn import RewardConfig, compute_reward, feature_model
    from ..train.models import backbone_cfg

    cfg = stage_config(args, RewardConfig, "reward")
    bits = validate_bits(args.bits)
    n = len(args.task)
    if len(args.task_h5) != n or len(args.out) != n or (args.features and len(args.features) != n):
        raise ValueError(f"--task ({n}), --task-h5 ({len(args.task_h5)}), --out ({len(args.out)})"
                         f"{' and --features (%d)' % len(args.features) if args.features else ''}"
                         " must have one entry per task")
    size = int(backbone_cfg(args.model)["input_size"][-1])
    net, name = feature_model(args.model)
    for i, (task, task_h5, out_path) in enumerate(zip(args.task, args.task_h5, args.out)):
        features = args.features[i] if args.features else None
        rec = Provenance.start("reward", cfg, inputs=[args.model, task_h5], task=task, bits=bits,
                               model_name=name, image_size=size)
        t0 = time.perf_counter()
        r = compute_reward(net, name, args.model, task_h5, size, k=cfg.k, temperature=cfg.temperature,
                           cache=features, batch_size=cfg.batch_size, device=args.device,
                           progress=not args.no_progress)
        out = {"bits": bits, "task": task, "knn5_top1": r["knn5_top1"], "k": r["k"],
               "temperature": r["temperature"], "feature_dim": r["feature_dim"], "n_train": r["n_train"],
               "n_test": r["n_test"]}
        # The record first, the JSON (the rule's main output) last: it exists only when all is done.
        rec.finish([out_path] + ([features] if features else []),
                   extra={**r, "seconds": round(time.perf_counter() - t0, 3)})
        write_json(out_path, out)
        print(json.dumps(out), flush=True)
    return {"scored": n}


def run_aggregate(args: argparse.Namespace) -> dict:
    table: dict[str, dict[str, float]] = {}
    for p in args.inputs:
        if is_record(p):  # provenance sidecars match the same shell globs
            continue
        try:
            rec = json.loads(Path(p).read_text())
            table.setdefault(rec["task"], {})[validate_bits(rec["bits"])] = float(rec["knn5_top1"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise RewardTableError(f"{p}: not a reward JSON ({e})") from None
    table = {t: table[t] for t in sorted(table)}
    rec = Provenance.start("reward_table", inputs=[p for p in args.inputs if not is_record(p)])
    write_table_tsv(table, args.tsv)
    outputs = [args.tsv]
    if args.reward_db:
        write_reward_db(table, args.reward_db)
        outputs.append(args.reward_db)
    if args.png:
        from ..reward.plot import plot_reward_heatmap
        plot_reward_heatmap(table, args.png)
        outputs.append(args.png)
    rec.finish(outputs)
    return {"tasks": len(table), "pairs": sum(len(r) for r in table.values())}


def run(args: argparse.Namespace) -> dict:
    return run_knn(args) if args.command == "knn" else run_aggregate(args)


main = stage_main(run, parse_args, __name__)
