"""Choose a simulator configuration per task from Task2Vec, reading rewards from a table.

Usage::

    # workflow: our reward table and one Task2Vec file per task
    python -m task2sim.cli.policy --table results/rewards/table.tsv \
        --task2vec results/task2vec/{digits8,fashion,faces}.npz --seen digits8 fashion --unseen faces \
        --out-dir results/policy --config '{"predictor": "ensemble"}' --seed 0 --threads 2

    # published Task2Sim table (20 tasks x 256 configs) with the paper's 12 seen / 8 unseen split
    python -m task2sim.cli.policy --reward-db reward_db.json \
        --task2vec-npz task2vec_resnet18_seen.npz task2vec_resnet18_unseen.npz --split paper \
        --out-dir results/policy_published --config '{}'

Writes ``policy.pt`` (the fitted ``policy.predictor``, with what it is), ``predictions.tsv`` (per
task: seen/unseen, predicted bits, reward when the table has the task, P(bit=1) per varied bit),
``summary.md``/``summary.tsv`` (every method on seen, unseen and leave-one-task-out, over seeds),
``heatmap.png`` (tasks x bits, P(bit=1)) and the provenance record of ``policy.pt``. Tasks with a
Task2Vec but no row in the table get a prediction with an empty reward. ``--noise`` (``results/rewards/noise.tsv``)
adds each task's measured seed sd beside the predictions. An interrupted run resumes from
``out-dir/checkpoint.pt`` (finished fits and the controller training in progress) when it was
written for the same config and inputs. Bad input prints ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..provenance import Provenance
from . import add_config_args, add_runtime_args, stage_config, stage_main, stage_parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "policy")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help="reward table.tsv (task bits knn5)")
    src.add_argument("--reward-db", help="reward table in the published reward_db.json layout")
    p.add_argument("--task2vec", "--task2vec-npz", dest="task2vec", nargs="+", required=True,
                   help="Task2Vec .npz files: {task}.npz with 'embedding', or '<task>/hessian' + '<task>/scale'")
    p.add_argument("--seen", nargs="*", default=None, help="tasks the predictors are fitted on")
    p.add_argument("--unseen", nargs="*", default=None, help="tasks only predicted (default: every other one)")
    p.add_argument("--split", choices=("paper",), help="paper: the Task2Sim paper's 12 seen / 8 unseen tasks")
    p.add_argument("--noise", help="noise.tsv of the reward noise stage: each task's seed sd beside the predictions")
    p.add_argument("--out-dir", required=True, help="folder for policy.pt, predictions.tsv, summary.*, heatmap.png")
    add_config_args(p, "policy")
    add_runtime_args(p, device=False)
    p.add_argument("--stop-after-epoch", type=int, default=None,
                   help="return after this many controller epochs, leaving a checkpoint to resume from")
    args = p.parse_args(argv)
    if args.split and (args.seen is not None or args.unseen is not None):
        p.error("--split paper and --seen/--unseen are exclusive")
    if not args.split and not args.seen:
        p.error("give --seen (and optionally --unseen) or --split paper")
    return args


def run(args: argparse.Namespace) -> dict:
    from ..policy.data import RewardMatrix, load_task2vec
    from ..policy.stage import (
        PAPER_SEEN,
        PAPER_UNSEEN,
        PolicyConfig,
        run_policy,
    )
    from ..reward.noise import read_noise_tsv
    from ..reward.table import read_reward_db, read_table_tsv

    cfg = stage_config(args, PolicyConfig, "policy", seed=args.seed)
    table_path = args.table or args.reward_db
    table = read_table_tsv(table_path) if args.table else read_reward_db(table_path)
    rm = RewardMatrix.from_table(table, source=table_path)
    emb = load_task2vec(args.task2vec)
    if args.split == "paper":
        seen, unseen = list(PAPER_SEEN), list(PAPER_UNSEEN)
    else:
        seen = list(args.seen)
        unseen = list(args.unseen) if args.unseen is not None else [t for t in emb if t not in seen]
    noise = read_noise_tsv(args.noise) if args.noise else None
    inputs = [table_path, *args.task2vec] + ([args.noise] if noise is not None else [])
    rec = Provenance.start("policy", cfg, seeds={"seeds": cfg.seeds}, inputs=inputs, seen=seen, unseen=unseen,
                           vary_bits=list(rm.space.vary_bits))
    summary = run_policy(cfg, rm, emb, seen, unseen, args.out_dir, noise=noise, stop_after_epoch=args.stop_after_epoch)
    if not summary["finished"]:
        return summary
    out = Path(args.out_dir)
    rec.finish([out / "policy.pt", out / "predictions.tsv", out / "summary.md", out / "summary.tsv",
                out / "heatmap.png"], extra=summary)
    return summary


main = stage_main(run, parse_args, __name__)
