"""Render synthetic pre-training data.

Usage::

    python -m task2sim.cli.render dataset --bits 10000101 --config '{"classes": 24, ...}' --seed 0 \\
        --out results/renders/10000101/images.h5 --preview .../preview.png --meta .../meta.json
    python -m task2sim.cli.render variations --config '{...}' --out results/renders/variations.png

``--config`` is the config's ``render`` section as JSON. A backend that cannot run here (no EGL,
no TDW build, mitsuba missing), an unknown key or bad bits print one line ``error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import json_object_arg
from ..bits import validate_bits
from ..render.assets import AssetError, PackageUnavailable
from ..render.backends import BackendUnavailable
from ..render.dataset import RenderConfig, render_dataset, render_variations


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m task2sim.cli.render", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dataset", help="render results/renders/{bits}/images.h5")
    d.add_argument("--bits", required=True, help="8-character config string, e.g. 10000101")
    d.add_argument("--config", required=True, help="the config's render section as JSON")
    d.add_argument("--seed", type=int, default=0, help="scene sampler seed")
    d.add_argument("--out", required=True, help="images.h5 to write")
    d.add_argument("--preview", required=True, help="preview.png to write")
    d.add_argument("--meta", required=True, help="meta.json to write")
    v = sub.add_parser("variations", help="one row per bit, only that bit on (paper Fig. 17)")
    v.add_argument("--config", required=True, help="the config's render section as JSON")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", required=True, help="PNG to write")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = RenderConfig.from_dict(json_object_arg(args.config, "--config"))
        if args.command == "dataset":
            summary = render_dataset(cfg, validate_bits(args.bits), args.out, args.preview, args.meta,
                                     seed=args.seed)
            print(json.dumps(summary))
        else:
            render_variations(cfg, args.out, seed=args.seed)
    except (ValueError, BackendUnavailable, AssetError, PackageUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
