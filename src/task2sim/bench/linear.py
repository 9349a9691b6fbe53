"""The linear probe's mini-batches: a DataLoader over a TensorDataset against ``FeatureBatches``.

    python -m task2sim.bench.linear [--n 1000 --dim 256 --classes 10 --epochs 30 --repeats 3]

Trains the probe's head (SGD with momentum, the evaluate.linear recipe's shape) on random
features both ways, in the same process, alternating, and prints the seconds of each, their ratio
and whether the two heads are bit-identical (they must be: the same batches from the same
generator). BENCHMARKS.md, "Final comparison and one-shot".
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..train.evaluate import FeatureBatches


def _train(f: torch.Tensor, y: torch.Tensor, n_classes: int, epochs: int, batches) -> tuple[float, torch.Tensor]:
    torch.manual_seed(1)
    head = nn.Linear(f.shape[1], n_classes)
    opt = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, t in batches:
            loss = loss_fn(head(x), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0, head.weight.detach().clone()


def bench_linear(n: int = 1000, dim: int = 256, n_classes: int = 10, epochs: int = 30, batch: int = 64,
                 repeats: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(n, dim, generator=g), torch.randint(0, n_classes, (n,), generator=g)
    loader_s, fast_s, identical = [], [], True
    for _ in range(repeats):
        a, wa = _train(f, y, n_classes, epochs, DataLoader(TensorDataset(f, y), batch_size=batch, shuffle=True,
                                                             generator=torch.Generator().manual_seed(3)))
        b, wb = _train(f, y, n_classes, epochs, FeatureBatches(f, y, batch, torch.Generator().manual_seed(3)))
        loader_s.append(a)
        fast_s.append(b)
        identical &= torch.equal(wa, wb)
    best_a, best_b = min(loader_s), min(fast_s)
    return {"dataloader_s": round(best_a, 3), "feature_batches_s": round(best_b, 3),
            "ratio": round(best_b / best_a, 3), "identical": bool(identical), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(json.dumps(bench_linear(a.n, a.dim, a.classes, a.epochs, repeats=a.repeats)))


if __name__ == "__main__":
    main()
