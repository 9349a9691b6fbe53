"""Compare backbone candidates by what the reward measures: train each on one source, 5-NN on tasks.

    python -m task2sim.bench.candidates --images results/renders/00000000/images.h5 \\
        --tasks results/tasks/*/data.h5 [--models t2s_resnet18_w32s4 t2s_resnet18_w32s2] [--epochs 5]

Each candidate is pre-trained with the default recipe (``PretrainConfig`` defaults, the given
epochs) on the same ``images.h5`` and scored by the weighted 5-NN on every task; the table gives
training images/s, wall time, and the 5-NN top-1 per task. ``--task-as-source TASK_H5`` uses a
task's training split as the source instead (written to a temporary render-layout file), for when no
render exists yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import torch

from ..config import config_from_dict, section_defaults
from ..reward.knn import compute_reward
from ..backbones.features import load_source
from ..backbones.images import read_arrays
from ..train.pretrain import PretrainConfig, pretrain


def task_as_render(task_h5: Path, out: Path) -> Path:
    images, labels = read_arrays(task_h5, "train")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    with h5py.File(out, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        f.attrs.update({"n_classes": int(labels.max()) + 1, "image_size": images.shape[1],
                        "complete": True, "format_version": 1})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m task2sim.bench.candidates", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="a render images.h5")
    src.add_argument("--task-as-source", help="a task data.h5 whose training split is the source")
    p.add_argument("--tasks", nargs="+", required=True, help="task data.h5 files scored by 5-NN")
    p.add_argument("--models", nargs="+", default=["t2s_resnet18_w32s4", "t2s_resnet18_w32s2"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    reward = section_defaults("reward")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(args.images) if args.images else task_as_render(Path(args.task_as_source), Path(tmp) / "src.h5")
        for name in args.models:
            out = Path(tmp) / name
            t0 = time.perf_counter()
            cfg = config_from_dict(PretrainConfig, {"model": name, "epochs": args.epochs}, "pretrain",
                                   seed=0, device="cpu")
            s = pretrain(cfg, images, out, progress=False)
            t_train = time.perf_counter() - t0
            rewards = {}
            bb = load_source(name, out / "model.pt")
            for task in args.tasks:
                tid = Path(task).parent.name
                if args.task_as_source and Path(task).resolve() == Path(args.task_as_source).resolve():
                    continue  # never score on the source itself
                rewards[tid] = compute_reward(bb, task, k=reward["k"], temperature=reward["temperature"],
                                              device="cpu", progress=False)["knn5_top1"]
            res[name] = {"train_seconds": round(t_train, 1), "images_per_s": round(s["mean_images_per_s"], 1),
                         "final_train_accuracy": round(s["final_accuracy"], 3),
                         "mean_knn5": round(float(np.mean(list(rewards.values()))), 2),
                         "knn5": {k: round(v, 1) for k, v in rewards.items()}}
            print(json.dumps({name: res[name]}), flush=True)
    if args.json:
        from ..io import write_json
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
