"""Pre-training speed by numeric precision and memory layout, before against after.

    python -m task2sim.bench.precision --images results/renders/<bits>/images.h5 \\
        [--before-src OLD/src] [--repeats 2] [--json out.json]

Two measurements, each interleaving its variants (A B C A B C ...) so that load from other
processes on a shared machine hits all of them alike; medians and ratios to fp32 are reported:

1. step: images/s of the bare train step (in-memory tensors) and of the real training loop
   (``H5ImageDataset`` + timm train transform + ``DataLoader`` + ``train_one_epoch``) for
   fp32 NCHW (the layout before), fp32 channels-last, and the ``amp: true`` path on this machine
   (autocast to ``amp_dtype``, channels-last). pipeline_ratio = loop / bare step (target >= 0.9).
2. features: seconds to extract a task's 5-NN features (both splits) with a trained backbone in
   fp32 NCHW, fp32 channels-last and autocast channels-last (``--checkpoint`` + ``--task-h5``), the
   share of each test image's 5 nearest training neighbours that agree with fp32 NCHW's, and the
   5-NN accuracy of each.
3. cli: wall seconds of the whole pre-training job (``python -m task2sim.cli.pretrain`` in a fresh
   process, default config) with ``amp: false`` and ``amp: true``; with ``--before-src`` also the
   code of another checkout (e.g. the commit before this change) run the same way.

``--compare-rewards AMP FP32`` instead compares two copies of the noise stage's rewards
(``<dir>/noise/{seed}/rewards/{bits}/{task}.json``, the same configurations and seeds, run once with
``pretrain.amp: true`` and once with ``false``): per task the fp32 seed sd, the mean difference,
and every pair of configurations the two orders disagree on, with its gaps in units of the standard
error of a difference of two seed means. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import section_defaults
from ..provenance import is_record
from ..backbones.runtime import amp_dtype, autocast_for, cpu_has_native_bf16, seed_worker, to_device
from ..train.common import train_one_epoch
from ..reward.knn import knn_accuracy
from ..backbones.images import EvalImages, H5ImageDataset, normalize_batch, read_meta, train_transform
from ..backbones.models import create_backbone, load_backbone

# name -> (autocast on, channels-last)
VARIANTS = {"fp32_nchw": (False, False), "fp32_channels_last": (False, True), "amp_channels_last": (True, True)}


class _Step:
    """One variant's model, optimizer and step (timm-default AdamW, as in pre-training)."""

    def __init__(self, model_name: str, n_classes: int, amp: bool, channels_last: bool, device: torch.device):
        torch.manual_seed(0)
        model = create_backbone(model_name, num_classes=n_classes)
        self.model = to_device(model, device) if channels_last else model.to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.amp, self.channels_last, self.device = amp, channels_last, device

    def bare(self, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t = time.perf_counter()
        for _ in range(steps):
            with autocast_for(self.device, self.amp):
                loss = nn.functional.cross_entropy(self.model(x), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return len(y) * steps / (time.perf_counter() - t)

    def loop(self, ds, batch: int, steps: int) -> float:
        """The real loop (channels-last variants only: ``train_one_epoch`` hands it NHWC batches);
        timed from the loader's start, as in an epoch."""
        g = torch.Generator().manual_seed(0)
        loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, generator=g,
                            worker_init_fn=seed_worker)
        t = time.perf_counter()
        ep = train_one_epoch(self.model, itertools.islice(loader, steps), self.opt, nn.CrossEntropyLoss(),
                             self.device, self.amp, progress=False)
        return ep["seen"] / (time.perf_counter() - t)


def bench_step(images: Path, model_name: str, batch: int, steps: int, repeats: int) -> dict:
    meta = read_meta(images)
    size, n_classes = int(meta["shape"][0]), int(meta["n_classes"])
    device = torch.device("cpu")
    ds = H5ImageDataset(images, None, train_transform(size), in_memory=True)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, n_classes, (batch,))
    runs = {k: _Step(model_name, n_classes, amp, cl, device) for k, (amp, cl) in VARIANTS.items()}
    for r in runs.values():  # warm-up: oneDNN builds its kernels for each layout and dtype
        r.bare(x, y, 2)
    rates: dict[str, dict[str, list[float]]] = {k: {"bare": [], "loop": []} for k in runs}
    for _ in range(repeats):
        for k, r in runs.items():
            rates[k]["bare"].append(r.bare(x, y, steps))
            if r.channels_last:  # the real loop is the channels-last one; NCHW only as a bare step
                rates[k]["loop"].append(r.loop(ds, batch, steps))
    ref = statistics.median(rates["fp32_nchw"]["bare"])
    out = {}
    for k, v in rates.items():
        bare = statistics.median(v["bare"])
        row = {"bare_images_per_s": bare, "bare_ratio": bare / ref}
        if v["loop"]:
            loop = statistics.median(v["loop"])
            row |= {"loop_images_per_s": loop, "loop_ratio": loop / ref, "pipeline_ratio": loop / bare}
        out[k] = row
    return {"model": model_name, "batch": batch, "image_size": size, "steps": steps, "repeats": repeats,
            "amp_dtype": str(amp_dtype(device, True)), "variants": out}


def bench_features(checkpoint: Path, task_h5: Path, repeats: int) -> dict:
    model, cfg = load_backbone(checkpoint)
    size = int(cfg["input_size"][-1])
    cpu = torch.device("cpu")
    splits = [EvalImages(task_h5, split, size) for split in ("train", "test")]

    @torch.no_grad()
    def features(amp: bool, channels_last: bool):
        m = (to_device(model, cpu) if channels_last else model.to(cpu, memory_format=torch.contiguous_format)).eval()
        out = []
        for ds in splits:
            fs, ys = [], []
            for x, y in ds.batches(256):
                x = normalize_batch(x)
                x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
                with autocast_for(cpu, amp):
                    fs.append(nn.functional.normalize(m.forward_head(m.forward_features(x), pre_logits=True).float(),
                                                      dim=1))
                ys.append(y)
            out += [torch.cat(fs), torch.cat(ys)]
        return out

    seconds: dict[str, list[float]] = {k: [] for k in VARIANTS}
    feats = {}
    for _ in range(repeats):
        for k, (amp, cl) in VARIANTS.items():
            t = time.perf_counter()
            feats[k] = features(amp, cl)
            seconds[k].append(time.perf_counter() - t)
    f_tr0, _, f_te0, _ = feats["fp32_nchw"]
    top0 = (f_te0 @ f_tr0.T).topk(5, dim=1).indices
    ref = statistics.median(seconds["fp32_nchw"])
    out = {}
    for k, (f_tr, y_tr, f_te, y_te) in feats.items():
        top = (f_te @ f_tr.T).topk(5, dim=1).indices
        agree = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top, top0)) / top.numel()
        out[k] = {"seconds": statistics.median(seconds[k]), "speedup": ref / statistics.median(seconds[k]),
                  "top5_agreement": agree, "knn5": knn_accuracy(f_tr.numpy(), y_tr.numpy(), f_te.numpy(), y_te.numpy())}
    return {"checkpoint": os.fspath(checkpoint), "task_h5": os.fspath(task_h5), "images": sum(map(len, splits)),
            "variants": out}


def bench_cli(images: Path, repeats: int, threads: int, before_src: Path | None) -> dict:
    base = section_defaults("pretrain")
    base = {k: v for k, v in base.items() if k not in ("num_workers", "in_memory")}
    variants = {"fp32": (Path(__file__).resolve().parents[2], {**base, "amp": False}),
                "amp": (Path(__file__).resolve().parents[2], {**base, "amp": True})}
    if before_src is not None:
        variants = {"before": (before_src.resolve(), base), **variants}
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for k, (src, cfg) in variants.items():
                out = Path(tmp) / f"{k}-{i}"
                env = {**os.environ, "PYTHONPATH": os.fspath(src)}
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "task2sim.cli.pretrain", "--images", os.fspath(images),
                                "--out-dir", os.fspath(out), "--config", json.dumps(cfg), "--seed", "0",
                                "--device", "cpu", "--threads", str(threads), "--no-progress"],
                               env=env, check=True, capture_output=True, text=True)
                seconds[k].append(time.perf_counter() - t)
                print(f"cli {k} repeat {i}: {seconds[k][-1]:.1f} s", file=sys.stderr, flush=True)
    ref = statistics.median(seconds["before" if before_src is not None else "fp32"])
    return {k: {"seconds": statistics.median(v), "all_seconds": v, "ratio_to_reference": statistics.median(v) / ref}
            for k, v in seconds.items()} | {"reference": "before" if before_src is not None else "fp32",
                                              "threads": threads, "repeats": repeats}


def _reward(root: Path, seed: str, bits: str, task: str) -> float:
    return float(json.loads((root / "noise" / seed / "rewards" / bits / f"{task}.json").read_text())["knn5_top1"])


def compare_rewards(amp_root: Path, fp32_root: Path) -> str:
    seeds = sorted(p.name for p in (fp32_root / "noise").iterdir())
    configs = sorted(p.name for p in (fp32_root / "noise" / seeds[0] / "rewards").iterdir())
    tasks = sorted(p.stem for p in (fp32_root / "noise" / seeds[0] / "rewards" / configs[0]).glob("*.json")
                   if not is_record(p))
    lines = [f"{len(configs)} configurations ({', '.join(configs)}), seeds {', '.join(seeds)}", "",
             "| task | fp32 seed sd | mean(amp - fp32) | / sd | pairs ordered differently: fp32 gap, amp gap "
             "(largest / SE) |", "|---|---|---|---|---|"]
    for t in tasks:
        a = np.array([[_reward(amp_root, s, b, t) for s in seeds] for b in configs])
        f = np.array([[_reward(fp32_root, s, b, t) for s in seeds] for b in configs])
        sd = float(np.sqrt(np.mean(f.var(axis=1, ddof=1))))
        pooled = float(np.sqrt(np.mean(np.concatenate([f.var(axis=1, ddof=1), a.var(axis=1, ddof=1)]))))
        se = pooled * np.sqrt(2 / len(seeds))  # sd of the difference of two seed means
        diff = float((a - f).mean())
        disc = [(configs[i], configs[j], f[i].mean() - f[j].mean(), a[i].mean() - a[j].mean())
                for i, j in itertools.combinations(range(len(configs)), 2)
                if (f[i].mean() - f[j].mean()) * (a[i].mean() - a[j].mean()) < 0]
        worst = max((max(abs(gf), abs(ga)) / se for *_, gf, ga in disc), default=0.0)
        pairs = "; ".join(f"{x} vs {y}: {gf:+.1f}, {ga:+.1f}" for x, y, gf, ga in disc) or "none"
        lines.append(f"| {t} | {sd:.2f} | {diff:+.2f} | {abs(diff) / sd:.2f} | {pairs}"
                     + (f" ({worst:.1f})" if disc else "") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m task2sim.bench.precision", description=__doc__.split("\n")[0])
    p.add_argument("--images", help="a render images.h5 (the default size); required unless --compare-rewards")
    p.add_argument("--compare-rewards", nargs=2, type=Path, metavar=("AMP", "FP32"),
                   help="compare the noise-stage rewards of two runs instead of timing")
    p.add_argument("--model", default=section_defaults("pretrain")["model"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=6, help="train steps per step measurement")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (medians reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", type=Path, help="a pre-trained model.pt, for the features part")
    p.add_argument("--task-h5", type=Path, help="a task's data.h5, for the features part")
    p.add_argument("--before-src", type=Path, help="src/ of another checkout, timed as 'before' in the cli part")
    p.add_argument("--skip", nargs="*", default=[], choices=("step", "features", "cli"))
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.compare_rewards:
        print(compare_rewards(*args.compare_rewards))
        return 0
    if not args.images:
        p.error("--images is required for the timings")
    torch.set_num_threads(args.threads)
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "processor": platform.processor() or platform.machine(),
                             "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__,
                             "load_avg": os.getloadavg()}}
    if "step" not in args.skip:
        res["step"] = bench_step(Path(args.images), args.model, args.batch, args.steps, args.repeats)
        print(json.dumps({"step": res["step"]}, indent=1), flush=True)
    if "features" not in args.skip and args.checkpoint and args.task_h5:
        res["features"] = bench_features(args.checkpoint, args.task_h5, args.repeats)
        print(json.dumps({"features": res["features"]}, indent=1), flush=True)
    if "cli" not in args.skip:
        res["cli"] = bench_cli(Path(args.images), max(1, args.repeats - 1), args.threads, args.before_src)
        print(json.dumps({"cli": res["cli"]}, indent=1), flush=True)
    if args.json:
        from ..io import write_json
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
