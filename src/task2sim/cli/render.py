"""Render synthetic pre-training data.

Usage::

    python -m task2sim.cli.render dataset --bits 10000101 --config '{"classes": 24, ...}' \
        --runtime '{"cache_dir": ".cache/assets"}' --seed 0 \
        --out results/renders/10000101/images.h5 --preview results/renders/10000101/preview.png
    python -m task2sim.cli.render variations --config '{...}' --out results/renders/variations.png

``--config`` is the config's ``render`` section as JSON (``vary_bits`` picks datasets, so the
workflow leaves it out). ``dataset`` writes the provenance record beside ``images.h5``; a rerun
continues an interrupted render from ``images.h5.part`` (its finished chunks) when that was
written for the same settings. A backend that cannot run here (no EGL, no TDW build, mitsuba
missing), an unknown key or bad bits print one line ``error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse

from . import add_config_args, add_runtime_args, stage_config, stage_main, stage_parser
from ..bits import validate_bits
from ..provenance import Provenance
from ..render.dataset import RenderConfig, render_dataset, render_variations


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "render")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dataset", help="render results/renders/{bits}/images.h5")
    d.add_argument("--bits", required=True, help="8-character config string, e.g. 10000101")
    d.add_argument("--out", required=True, help="images.h5 to write")
    d.add_argument("--preview", required=True, help="preview.png to write")
    d.add_argument("--stop-after-chunk", type=int, default=None,
                   help="return after this many chunks, leaving images.h5.part to resume from")
    v = sub.add_parser("variations", help="one row per bit, only that bit on (paper Fig. 17)")
    v.add_argument("--out", required=True, help="PNG to write")
    for q in (d, v):
        add_config_args(q, "render", runtime=True)
        add_runtime_args(q, device=False, threads=False)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict | None:
    cfg = stage_config(args, RenderConfig, "render")
    if args.command == "variations":
        rec = Provenance.start("render_variations", cfg, seeds={"scene": args.seed})
        render_variations(cfg, args.out, seed=args.seed)
        rec.finish([args.out])
        return None
    bits = validate_bits(args.bits)
    rec = Provenance.start("render", cfg, seeds={"scene": args.seed}, bits=bits)
    summary = render_dataset(cfg, bits, args.out, args.preview, seed=args.seed,
                             stop_after_chunk=args.stop_after_chunk)
    if summary["finished"]:
        rec.finish([args.out, args.preview], extra=summary)
    return summary


main = stage_main(run, parse_args, __name__)
