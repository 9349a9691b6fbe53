"""Pre-train a backbone on one rendered dataset: model.pt + history.tsv + meta.json.

Usage::

    python -m task2sim.cli.pretrain --images results/renders/10000001/images.h5 \\
        --out-dir results/pretrain/10000001 --params '{"model": "t2s_resnet18_w32s4", "epochs": 5}' \\
        --seed 0 --device auto --threads 2

``--params`` is the workflow's ``pretrain`` config section as JSON (keys of
``task2sim.train.pretrain.PretrainConfig``). Reruns resume from ``out-dir/checkpoint.pt`` when it was
written for the same parameters and input. Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import json_object_arg
from ..train.data import DataError
from ..train.pretrain import PretrainConfig, pretrain


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m task2sim.cli.pretrain", description=__doc__.split("\n")[0])
    g = p.add_argument_group("inputs and outputs")
    g.add_argument("--images", required=True, help="rendered images.h5")
    g.add_argument("--out-dir", required=True, help="folder for model.pt, history.tsv, meta.json")
    t = p.add_argument_group("training")
    t.add_argument("--params", default="{}", help="JSON object of PretrainConfig keys")
    t.add_argument("--seed", type=int, default=None, help="seed (overrides params)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="device (overrides params)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (0 = default)")
    t.add_argument("--stop-after-epoch", type=int, default=None,
                   help="return after this many epochs, leaving a checkpoint to resume from")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        params = json_object_arg(args.params, "--params")
        for key in ("seed", "device", "threads"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
        cfg = PretrainConfig.from_dict(params)
        summary = pretrain(cfg, args.images, args.out_dir, stop_after_epoch=args.stop_after_epoch,
                           progress=not args.no_progress)
    except (DataError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
