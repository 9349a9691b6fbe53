"""Pre-train a backbone on one rendered dataset: model.pt + history.tsv + provenance record.

Usage::

    python -m task2sim.cli.pretrain --images results/renders/10000001/images.h5 \
        --out-dir results/pretrain/10000001 --config '{"model": "t2s_resnet18_w32s4", "epochs": 5}' \
        --runtime '{"num_workers": 0}' --seed 0 --device auto --threads 2

``--config`` is the workflow's ``pretrain`` section (keys of ``PretrainConfig``; the schema fills
in the rest). Reruns resume from ``out-dir/checkpoint.pt`` when it was written for the same
parameters and input. Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse

from . import add_config_args, add_runtime_args, stage_config, stage_main, stage_parser
from ..provenance import Provenance
from ..train.pretrain import PretrainConfig, pretrain


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "pretrain")
    p.add_argument("--images", required=True, help="rendered images.h5")
    p.add_argument("--out-dir", required=True, help="folder for model.pt, history.tsv and their provenance record")
    add_config_args(p, "pretrain", runtime=True)
    add_runtime_args(p)
    p.add_argument("--stop-after-epoch", type=int, default=None,
                   help="return after this many epochs, leaving a checkpoint to resume from")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    cfg = stage_config(args, PretrainConfig, "pretrain", seed=args.seed, device=args.device)
    rec = Provenance.start("pretrain", cfg, seeds={"seed": cfg.seed}, inputs=[args.images])
    summary = pretrain(cfg, args.images, args.out_dir, stop_after_epoch=args.stop_after_epoch,
                       progress=not args.no_progress)
    summary.pop("history")
    if summary["finished"]:
        rec.finish(summary.pop("outputs"), extra=summary)
    return summary


main = stage_main(run, parse_args, __name__)
