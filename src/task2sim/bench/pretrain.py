"""Measure the pre-training input pipeline, the backbone candidates, and the 5-NN on fashion's size.

    python -m task2sim.bench.pretrain [--images results/renders/<bits>/images.h5] [--json out.json]

Every figure is a ratio against a reference measured in the same process, interleaved with it
(A B A B ...), so load from other processes on a shared machine hits both sides alike:

1. pipeline: images/s of the real training loop (H5ImageDataset + timm train transform +
   DataLoader + train step) / images/s of the bare train step on in-memory tensors (target >= 0.9);
   for in-memory vs lazy h5 reads and 0 vs 1 loader workers.
2. candidates: bare train-step images/s of each small-image backbone / that of the default.
3. knn: 5-NN on 60k x 10k synthetic unit features (fashion's full size; features are random, the
   timing does not depend on their values) / one dense 10k x 60k similarity matmul.

Without ``--images`` a render-shaped file (24 classes x 120 images, 64 px, structured noise) is
written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..backbones.runtime import seed_worker
from ..backbones.images import H5ImageDataset, normalize_batch, read_meta, train_transform
from ..reward.knn import knn_predict
from ..backbones.models import create_backbone

CANDIDATES = ("t2s_resnet18_w32s4", "t2s_resnet18_w32s2", "t2s_resnet18_w32")


def synthetic_render(path: Path, n_classes: int = 24, per_class: int = 120, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), per_class)
    # Smooth random blobs (upsampled noise), so JPEG-like image statistics, not white noise.
    small = rng.integers(0, 256, (len(labels), size // 8, size // 8, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(64, size, size, 3))
        f.create_dataset("labels", data=labels.astype(np.int64))
        f.create_dataset("class_names", data=[f"c{i}" for i in range(n_classes)], dtype=h5py.string_dtype())
        f.attrs.update({"n_classes": n_classes, "image_size": size, "complete": True, "format_version": 1})
    return path


def _step(model, opt, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bare_rate(model, opt, batch: int, size: int, n_classes: int, steps: int) -> float:
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, n_classes, (batch,))
    t = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, x, y)
    return batch * steps / (time.perf_counter() - t)


def pipeline_rate(model, opt, ds, batch: int, steps: int, workers: int) -> float:
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, generator=g,
                        num_workers=workers, worker_init_fn=seed_worker)
    n, t = 0, time.perf_counter()  # timing includes loader start-up, as in a real epoch
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        _step(model, opt, normalize_batch(x), y)
        n += len(y)
    return n / (time.perf_counter() - t)


def bench_pipeline(images: Path, model_name: str, batch: int, steps: int, repeats: int) -> dict:
    meta = read_meta(images)
    size, n_classes = int(meta["shape"][0]), meta["n_classes"]
    torch.manual_seed(0)
    model = create_backbone(model_name, num_classes=n_classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tf = train_transform(size)
    variants = {"in_memory_w0": (True, 0), "lazy_h5_w0": (False, 0), "in_memory_w1": (True, 1)}
    datasets = {k: H5ImageDataset(images, None, tf, in_memory=m) for k, (m, _) in variants.items()}
    bare_rate(model, opt, batch, size, n_classes, 2)  # warm-up
    out: dict = {k: [] for k in variants} | {"bare": []}
    for _ in range(repeats):
        for k, (_, w) in variants.items():
            out["bare"].append(bare_rate(model, opt, batch, size, n_classes, steps))
            out[k].append(pipeline_rate(model, opt, datasets[k], batch, steps, w))
    bare = statistics.median(out["bare"])
    # Transform cost alone (one process): how much of a step the data side needs.
    ds = datasets["in_memory_w0"]
    t = time.perf_counter()
    for i in range(512):
        normalize_batch(ds[i % len(ds)][0][None])
    per_image_ms = (time.perf_counter() - t) / 512 * 1e3
    return {"model": model_name, "batch": batch, "image_size": size, "bare_images_per_s": bare,
            "transform_ms_per_image": per_image_ms,
            **{f"{k}_images_per_s": statistics.median(v) for k, v in out.items() if k != "bare"},
            **{f"{k}_ratio": statistics.median(v) / bare for k, v in out.items() if k != "bare"}}


def bench_candidates(batch: int, size: int, steps: int, repeats: int) -> dict:
    models = {}
    for name in CANDIDATES:
        torch.manual_seed(0)
        m = create_backbone(name, num_classes=24).train()
        models[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-3))
        bare_rate(*models[name], batch, size, 24, 1)
    rates: dict[str, list[float]] = {n: [] for n in CANDIDATES}
    for _ in range(repeats):
        for name in CANDIDATES:
            rates[name].append(bare_rate(*models[name], batch, size, 24, steps))
    ref = statistics.median(rates[CANDIDATES[0]])
    return {name: {"images_per_s": statistics.median(r), "ratio_to_default": statistics.median(r) / ref,
                   "params": sum(p.numel() for p in models[name][0].parameters()),
                   "feature_dim": int(models[name][0].num_features)} for name, r in rates.items()}


def bench_knn(n_train: int = 60000, n_test: int = 10000, dim: int = 256, repeats: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    tr = torch.nn.functional.normalize(torch.randn(n_train, dim, generator=g), dim=1)
    te = torch.nn.functional.normalize(torch.randn(n_test, dim, generator=g), dim=1)
    y = torch.randint(0, 10, (n_train,), generator=g)
    knn_t, mm_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        knn_predict(tr, y, te, n_classes=10, chunk=1024)
        knn_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        for s in range(0, n_test, 1024):  # the unavoidable work: every similarity once
            te[s:s + 1024] @ tr.T
        mm_t.append(time.perf_counter() - t)
    k, m = statistics.median(knn_t), statistics.median(mm_t)
    return {"n_train": n_train, "n_test": n_test, "dim": dim, "knn_seconds": k, "matmul_seconds": m,
            "knn_over_matmul": k / m, "chunk": 1024,
            "peak_chunk_mb": 1024 * n_train * 4 / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m task2sim.bench.pretrain", description=__doc__.split("\n")[0])
    p.add_argument("--images", help="a render images.h5 (default: a synthetic one of the default size)")
    p.add_argument("--model", default=CANDIDATES[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=6, help="train steps per measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (medians reported)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--skip", nargs="*", default=[], choices=("pipeline", "candidates", "knn"))
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "processor": platform.processor() or platform.machine(),
                             "torch": torch.__version__, "load_avg": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(args.images) if args.images else synthetic_render(Path(tmp) / "images.h5")
        if "pipeline" not in args.skip:
            res["pipeline"] = bench_pipeline(images, args.model, args.batch, args.steps, args.repeats)
            print(json.dumps({"pipeline": res["pipeline"]}, indent=1), flush=True)
        if "candidates" not in args.skip:
            res["candidates"] = bench_candidates(args.batch, int(read_meta(images)["shape"][0]),
                                                 max(2, args.steps // 2), args.repeats)
            print(json.dumps({"candidates": res["candidates"]}, indent=1), flush=True)
    if "knn" not in args.skip:
        res["knn"] = bench_knn()
        print(json.dumps({"knn": res["knn"]}, indent=1), flush=True)
    if args.json:
        from ..io import write_json
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
