"""5-NN rewards: one backbone on several tasks, or the aggregate table of all pairs.

Usage::

    python -m task2sim.cli.reward knn --model results/pretrain/10000001/model.pt --bits 10000001 \
        --task digits8 fashion --task-h5 results/tasks/{digits8,fashion}/data.h5 \
        --out results/rewards/10000001/{digits8,fashion}.json \
        --features results/features/10000001/{digits8,fashion}.npz \
        --config '{"k": 5, "temperature": 0.07}' --runtime '{"batch_size": 256}'

    python -m task2sim.cli.reward noise --tsv results/rewards/noise.tsv \
        [--table-repeats results/noise/1/rewards ...] \
        [--repeats results/noise/1/rewards results/noise/2/rewards] -- results/rewards/*/*.json

    python -m task2sim.cli.reward aggregate --tsv results/rewards/table.tsv \
        --png results/rewards/table.png [--noise results/rewards/noise.tsv] \
        [--measured-tsv results/rewards/train_loo.tsv] [--repeats results/noise/1/rewards ...] \
        -- results/rewards/*/*.json

``knn`` scores one backbone on one or more tasks (``--task``, ``--task-h5``, ``--out`` and
``--features`` are parallel lists): the backbone is loaded once, and the ~5 s of torch/timm
start-up is paid once per backbone instead of once per task. The model's architecture and
training image size come from the checkpoint itself. Each reward JSON (docs/FORMATS.md) gets its
provenance record. ``aggregate`` writes the table; with ``--repeats`` (reward.seeds: each folder
holds one other seed's ``{bits}/{task}.json`` of every configuration) a cell is the mean over the
run and those seeds. ``noise`` compares the run's rewards with repeated runs at other seeds: the
table's own seeds (``--table-repeats``, every configuration) and a few configurations at the
noise stage's seeds (``--repeats``), and writes the per-task seed sd, spread and their ratio
(``task2sim.reward.noise``). Bad input prints one line ``error: ...`` and exits 2.
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
    a.add_argument("--noise", help="noise.tsv: annotate the heatmap with each task's seed sd and ties")
    a.add_argument("--measured-tsv", help="also write the training-split table (knn5_train_loo, same layout): "
                   "what measured selection chooses from")
    a.add_argument("--repeats", nargs="*", default=[],
                   help="the table's other seeds: one folder each, holding {bits}/{task}.json of every configuration")
    n = sub.add_parser("noise", help="per-task seed sd, spread and spread/sd from repeated configurations")
    n.add_argument("inputs", nargs="+", help="reward JSON files of the run (every configuration)")
    n.add_argument("--table-repeats", nargs="*", default=[],
                   help="the table's other seeds (reward.seeds): one folder each, every configuration")
    n.add_argument("--repeats", nargs="*", default=[],
                   help="one folder per other seed, holding {bits}/{task}.json of the repeated configurations")
    n.add_argument("--tsv", required=True, help="noise.tsv to write")
    return p.parse_args(argv)


def run_knn(args: argparse.Namespace) -> dict:
    from ..backbones.features import load_source
    from ..reward.knn import RewardConfig, compute_reward

    cfg = stage_config(args, RewardConfig, "reward")
    bits = validate_bits(args.bits)
    n = len(args.task)
    if len(args.task_h5) != n or len(args.out) != n or (args.features and len(args.features) != n):
        raise ValueError(f"--task ({n}), --task-h5 ({len(args.task_h5)}), --out ({len(args.out)})"
                         f"{' and --features (%d)' % len(args.features) if args.features else ''}"
                         " must have one entry per task")
    bb = load_source(bits, args.model)
    trained_on = bb.cfg.get("render_bits")
    if trained_on and trained_on != bits:  # its reward would land in another configuration's cell
        raise ValueError(f"{args.model}: a backbone pre-trained on the {trained_on} render, scored as --bits {bits}")
    for i, (task, task_h5, out_path) in enumerate(zip(args.task, args.task_h5, args.out)):
        features = args.features[i] if args.features else None
        rec = Provenance.start("reward", cfg, inputs=[args.model, task_h5], task=task, bits=bits,
                               model_name=bb.name, image_size=bb.image_size)
        t0 = time.perf_counter()
        r = compute_reward(bb, task_h5, k=cfg.k, temperature=cfg.temperature, cache=features,
                           batch_size=cfg.batch_size, device=args.device, progress=not args.no_progress,
                           amp=cfg.amp)
        out = {"bits": bits, "task": task, "knn5_top1": r["knn5_top1"], "knn5_train_loo": r["knn5_train_loo"],
               "k": r["k"],
               "temperature": r["temperature"], "feature_dim": r["feature_dim"], "n_train": r["n_train"],
               "n_test": r["n_test"]}
        # The record first, the JSON (the rule's main output) last: it exists only when all is done.
        rec.finish([out_path] + ([features] if features else []),
                   extra={**r, "seconds": round(time.perf_counter() - t0, 3)})
        write_json(out_path, out)
        print(json.dumps(out), flush=True)
    return {"scored": n}


def read_reward_jsons(paths: list[str], key: str = "knn5_top1") -> dict[str, dict[str, float]]:
    """{task: {bits: value of key}} from reward JSON files (provenance records among them are skipped):
    ``knn5_top1`` (the reward, on the test split) or ``knn5_train_loo`` (leave-one-out within the
    training split)."""
    table: dict[str, dict[str, float]] = {}
    for p in paths:
        if is_record(p):  # provenance sidecars match the same shell globs
            continue
        try:
            rec = json.loads(Path(p).read_text())
            table.setdefault(rec["task"], {})[validate_bits(rec["bits"])] = float(rec[key])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise RewardTableError(f"{p}: not a reward JSON ({e})") from None
    return {t: table[t] for t in sorted(table)}


def repeat_files(folder: str) -> list[str]:
    """One other seed's reward JSONs (``folder/{bits}/{task}.json``)."""
    files = sorted(str(p) for p in Path(folder).glob("*/*.json") if not is_record(p))
    if not files:
        raise RewardTableError(f"{folder}: no repeated reward JSONs ({{bits}}/{{task}}.json)")
    return files


def read_repeat(folder: str, key: str = "knn5_top1") -> dict[str, dict[str, float]]:
    """{bits: {task: value}} of one other seed's reward JSONs."""
    by_task = read_reward_jsons(repeat_files(folder), key)
    return {b: {t: by_task[t][b] for t in by_task if b in by_task[t]}
            for b in {b for row in by_task.values() for b in row}}


def run_noise(args: argparse.Namespace) -> dict:
    from ..reward.noise import reward_noise, write_noise_tsv

    table = read_reward_jsons(args.inputs)
    table_repeats = {d: read_repeat(d) for d in args.table_repeats}
    repeats = {d: read_repeat(d) for d in args.repeats if d not in table_repeats}
    inputs = [p for p in args.inputs if not is_record(p)] + [f for d in {**table_repeats, **repeats}
                                                            for f in repeat_files(d)]
    rec = Provenance.start("reward_noise", inputs=inputs, repeats=args.repeats, table_repeats=args.table_repeats)
    noise = reward_noise(table, repeats, table_repeats)
    write_noise_tsv(noise, args.tsv)
    rec.finish([args.tsv], extra={"noise": noise})
    return {t: {"ratio": round(r["ratio"], 2), "p_value": round(r["p_value"], 4)} for t, r in noise.items()}


def run_aggregate(args: argparse.Namespace) -> dict:
    from ..reward.table import mean_table

    runs = [[p for p in args.inputs if not is_record(p)]] + [repeat_files(d) for d in args.repeats]
    names = ["the run", *args.repeats]

    def table_of(key):
        return mean_table([read_reward_jsons(files, key) for files in runs], names)

    table = table_of("knn5_top1")
    inputs = [f for files in runs for f in files] + ([args.noise] if args.noise else [])
    rec = Provenance.start("reward_table", inputs=inputs, repeats=args.repeats)
    write_table_tsv(table, args.tsv)
    outputs = [args.tsv]
    if args.reward_db:
        write_reward_db(table, args.reward_db)
        outputs.append(args.reward_db)
    if args.measured_tsv:
        write_table_tsv(table_of("knn5_train_loo"), args.measured_tsv)
        outputs.append(args.measured_tsv)
    if args.png:
        from ..reward.noise import read_noise_tsv
        from ..reward.plot import plot_reward_heatmap
        seeds = 1 + len(args.repeats)
        title = "5-NN top-1 (%) per task and simulator configuration" + (
            f" (mean over {seeds} seeds)" if seeds > 1 else "")
        plot_reward_heatmap(table, args.png, title=title,
                            noise=read_noise_tsv(args.noise) if args.noise else None)
        outputs.append(args.png)
    rec.finish(outputs)
    return {"tasks": len(table), "pairs": sum(len(r) for r in table.values()), "seeds": 1 + len(args.repeats)}


def run(args: argparse.Namespace) -> dict:
    return {"knn": run_knn, "noise": run_noise, "aggregate": run_aggregate}[args.command](args)


main = stage_main(run, parse_args, __name__)
