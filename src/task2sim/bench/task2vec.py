"""Measure Task2Vec on real task files: seconds per task at the default config, and ratios.

    python -m task2sim.bench.task2vec --tasks results/tasks/{digits8,mnist5k,textures,brain}/data.h5 \
        [--threads 1] [--config '{"samples": 1024}'] [--json out.json]

The probe is loaded once; for each task, in one process and interleaved so that load from other
processes hits all alike:

1. the default config (``--config`` over the schema's defaults) with seed 0: wall seconds of each
   phase (feature pass, head fit, Fisher pass) and CPU seconds of the whole embedding;
2. the same with twice the Fisher samples (ratio of the Fisher passes, expected ~2), and with
   seed 1 at both sample counts: the cosine distance between two seeds of one task, against the
   distance between different tasks, says whether the sample count resolves the tasks.

Start-up of a CLI process (python, torch, timm, the probe's weights) comes on top; BENCHMARKS.md
gives it as measured with ``/usr/bin/time``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..config import config_from_dict
from ..task2vec import Task2VecConfig, cosine_distance, embed_task_h5, load_probe


def _run(path, cfg, model):
    c0, w0 = time.process_time(), time.perf_counter()
    res = embed_task_h5(path, cfg, model=model)
    return res, round(time.perf_counter() - w0, 2), round(time.process_time() - c0, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", required=True, help="task data.h5 files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--config", default="{}", help="task2vec section (JSON) over the schema's defaults")
    p.add_argument("--json", help="write the measurements here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = json.loads(args.config)
    cfg = {s: config_from_dict(Task2VecConfig, base, "task2vec", seed=s, device="cpu") for s in (0, 1)}
    n = cfg[0].samples
    cfg2 = {s: config_from_dict(Task2VecConfig, {**base, "samples": 2 * n}, "task2vec", seed=s, device="cpu")
            for s in (0, 1)}
    model = load_probe(cfg[0].probe, cfg[0].checkpoint)
    rows, emb = [], {}
    for path in args.tasks:
        task = Path(path).parent.name
        r0, wall, cpu = _run(path, cfg[0], model)
        r0b, wall2, cpu2 = _run(path, cfg2[0], model)
        r1 = _run(path, cfg[1], model)[0]
        r1b = _run(path, cfg2[1], model)[0]
        emb[task] = r0.embedding
        i, i2 = r0.info, r0b.info
        row = {"task": task, "n_train": i["n_train"], "n_classes": i["n_classes"], "dim": i["dim"],
               "wall_s": wall, "cpu_s": cpu, "features_s": i["seconds_features"], "head_s": i["seconds_head"],
               "fisher_s": i["seconds_fisher"],
               "fisher_over_features": round(i["seconds_fisher"] / i["seconds_features"], 2),
               "wall_2n_s": wall2, "cpu_2n_s": cpu2,
               "fisher_2n_over_n": round(i2["seconds_fisher"] / i["seconds_fisher"], 2),
               "seed_distance_n": round(cosine_distance(r0.embedding, r1.embedding), 4),
               "seed_distance_2n": round(cosine_distance(r0b.embedding, r1b.embedding), 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    tasks = list(emb)
    between = [cosine_distance(emb[a], emb[b]) for k, a in enumerate(tasks) for b in tasks[k + 1:]]
    out = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
           "torch": torch.__version__, "config": base, "samples": n, "rows": rows,
           "mean_wall_s": round(float(np.mean([r["wall_s"] for r in rows])), 2),
           "mean_cpu_s": round(float(np.mean([r["cpu_s"] for r in rows])), 2),
           "between_task_distance_min": round(min(between), 4) if between else None,
           "between_task_distance_mean": round(float(np.mean(between)), 4) if between else None}
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
