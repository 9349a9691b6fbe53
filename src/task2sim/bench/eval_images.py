"""Reading a task for feature extraction: per-image transform + DataLoader against
``EvalImages.batches``.

    python -m task2sim.bench.eval_images --task-h5 results/tasks/<task>/data.h5 [--size 64 --repeats 3]

Reads both splits of the task as uint8 batches of 256 both ways, in the same process,
alternating, and prints the best seconds of each, their ratio and whether every batch is
byte-identical (it must be: the same Pillow resize). BENCHMARKS.md, "Feature extraction".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..backbones.images import EvalImages, H5ImageDataset, eval_transform


def _read(batches) -> tuple[float, list[torch.Tensor]]:
    t0 = time.perf_counter()
    out = [x for x, _ in batches]
    return time.perf_counter() - t0, out


def bench_eval_images(task_h5: Path, size: int = 64, batch: int = 256, repeats: int = 3) -> dict:
    splits = [(EvalImages(task_h5, s, size), H5ImageDataset(task_h5, s, eval_transform(size)))
              for s in ("train", "test")]
    loader_s, batches_s, identical = [], [], True
    for _ in range(repeats):
        a = b = 0.0
        for fast, slow in splits:
            ta, xa = _read(DataLoader(slow, batch_size=batch))
            tb, xb = _read(fast.batches(batch))
            a, b = a + ta, b + tb
            identical &= len(xa) == len(xb) and all(torch.equal(u, v) for u, v in zip(xa, xb))
        loader_s.append(a)
        batches_s.append(b)
    best_a, best_b = min(loader_s), min(batches_s)
    return {"task_h5": str(task_h5), "images": sum(len(f) for f, _ in splits), "size": size,
            "dataloader_s": round(best_a, 3), "eval_batches_s": round(best_b, 3), "ratio": round(best_b / best_a, 3),
            "identical": bool(identical)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task-h5", type=Path, required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(bench_eval_images(a.task_h5, a.size, repeats=a.repeats)))


if __name__ == "__main__":
    main()
