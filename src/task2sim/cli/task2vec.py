"""Task2Vec embeddings of downstream tasks, and the task-distance matrices.

Usage::

    python -m task2sim.cli.task2vec embed --task-h5 results/tasks/digits8/data.h5 --task digits8 \
        --out results/task2vec/digits8.npz --config '{"samples": 1024, "input_size": 64}' \
        --seed 0 --device auto --threads 2

    python -m task2sim.cli.task2vec distances results/task2vec/*.npz \
        --png results/task2vec/distances.png --tsv results/task2vec/distances.tsv \
        --seen digits8 fashion --unseen faces

``embed`` writes ``{task}.npz`` (``embedding`` float32 [D], the raw per-filter Fisher values;
``layer_names``, ``layer_sizes``, ``probe``, ``bn_mode``) and its provenance record; ``--config``
is the workflow's ``task2vec`` section (docs/task2vec.md). ``distances`` reads the embeddings (task
id = file stem) and writes both distances for every ordered pair of tasks as a TSV, and a figure
of the two matrices side by side in hierarchical-clustering order. Bad input prints one line
``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..provenance import Provenance, is_record
from . import add_config_args, add_runtime_args, stage_config, stage_main, stage_parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "task2vec")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed", help="the Task2Vec embedding of one task")
    e.add_argument("--task-h5", required=True, help="the task's data.h5")
    e.add_argument("--task", required=True, help="task id")
    e.add_argument("--out", required=True, help="{task}.npz to write")
    add_config_args(e, "task2vec")
    add_runtime_args(e)
    d = sub.add_parser("distances", help="distance matrices (TSV + figure) of task embeddings")
    d.add_argument("inputs", nargs="+", help="{task}.npz embedding files")
    d.add_argument("--tsv", required=True, help="distances.tsv to write (task_a task_b cosine normalized_cosine)")
    d.add_argument("--png", required=True, help="figure to write")
    d.add_argument("--seen", nargs="*", default=[], help="task ids marked as seen")
    d.add_argument("--unseen", nargs="*", default=[], help="task ids marked as unseen")
    return p.parse_args(argv)


def run_embed(args: argparse.Namespace) -> dict:
    from ..backbones.imagenet import weights_file
    from ..task2vec import BN_MODE, Task2VecConfig, embed_task_h5, write_embedding_npz

    cfg = stage_config(args, Task2VecConfig, "task2vec", seed=args.seed, device=args.device)
    if not Path(args.task_h5).is_file():
        raise FileNotFoundError(f"{args.task_h5}: no such task file")
    weights = weights_file(cfg.probe, cfg.checkpoint)
    rec = Provenance.start("task2vec", cfg, seeds={"seed": cfg.seed}, inputs=[args.task_h5, weights],
                           task=args.task, bn_mode=BN_MODE)
    t0 = time.perf_counter()
    res = embed_task_h5(args.task_h5, cfg, progress=not args.no_progress)
    write_embedding_npz(args.out, res)
    summary = {"task": args.task, "probe": res.probe, "bn_mode": res.bn_mode, **res.info,
               "layers": len(res.layer_names), "seconds": round(time.perf_counter() - t0, 3)}
    rec.finish([args.out], extra=summary)
    return summary


def run_distances(args: argparse.Namespace) -> dict:
    from ..task2vec import (
        Task2VecError,
        plot_distances,
        read_embedding_npz,
        task_distances,
        write_distances_tsv,
    )

    files = [p for p in args.inputs if not is_record(p)]  # provenance sidecars match the same globs
    tasks = [Path(p).stem for p in files]
    dup = sorted({t for t in tasks if tasks.count(t) > 1})
    if dup:
        raise Task2VecError(f"task {dup[0]!r} given by more than one embedding file")
    both = sorted(set(args.seen) & set(args.unseen))
    if both:
        raise Task2VecError(f"task {both[0]!r} is both --seen and --unseen")
    rec = Provenance.start("task2vec_distances", inputs=files)
    embeddings = {t: read_embedding_npz(p) for t, p in zip(tasks, files)}
    mats = task_distances(embeddings)
    write_distances_tsv(args.tsv, tasks, mats)
    plot_distances(tasks, mats, args.png, seen=args.seen, unseen=args.unseen)
    rec.finish([args.tsv, args.png])
    return {"tasks": len(tasks), "dim": int(next(iter(embeddings.values())).size)}


def run(args: argparse.Namespace) -> dict:
    return run_embed(args) if args.command == "embed" else run_distances(args)


main = stage_main(run, parse_args, __name__)
