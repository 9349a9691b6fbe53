"""ASG: render the digit source, train the learning-rate policy, fine-tune five methods, summarise.

Usage::

    python -m task2sim.cli.asg render --out results/asg/source/silhouette/01000100/images.h5 \
        --preview results/asg/source/silhouette/01000100/preview.png --bits 01000100 \
        --config '{"source_images_per_class": 120}' --render-config '{"backend": "moderngl"}' \
        --runtime '{"cache_dir": ".cache/assets"}' --seed 0

    python -m task2sim.cli.asg policy --source results/asg/source/silhouette/01000100/images.h5 \
        --out results/asg/policy.pt --figure results/asg/policy_schedule.png --config '{...}' --seed 0

    python -m task2sim.cli.asg finetune --source results/asg/source/silhouette/01000100/images.h5 \
        --policy results/asg/policy.pt --target mnist5k digits8 \
        --target-h5 results/tasks/{mnist5k,digits8}/data.h5 --out-root results/asg \
        --config '{"epochs": 5, "lr": 0.01}' --seed 0 --threads 2

    python -m task2sim.cli.asg summary --out results/asg/summary.md --root results/asg \
        results/asg/*/*/metrics.tsv        # --figure curves.png: curves with a band over runs

``--config`` is the workflow's ``asg`` section (ASGConfig keys; the schema fills in the rest).
``render`` takes the render section's backend keys as ``--render-config``; the digit source's
own size and count come from ``asg``. ``finetune`` trains each method once and, for every target,
writes ``<out-root>/<target>/<method>/metrics.tsv``, ``model.pt`` (+ provenance),
``<out-root>/<target>/curves.png`` and, with method asg, ``schedule.tsv`` and ``schedule.png``.
Training reads only the synthetic source; the targets are only evaluated. ``finetune`` saves each
method's state after every epoch under ``<out-root>/checkpoint/`` (removed once the outputs are
written); a rerun with the same config and inputs continues from it.
Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..provenance import Provenance
from . import add_config_args, add_runtime_args, json_object_arg, stage_config, stage_main, stage_parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "asg")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render the 10 digit classes with our renderer")
    r.add_argument("--out", required=True, help="images.h5 to write")
    r.add_argument("--preview", required=True, help="preview.png to write")
    r.add_argument("--bits", required=True, help="simulator configuration (8 bits)")
    r.add_argument("--render-config", default="{}", help="the render section's science keys as JSON")
    add_config_args(r, "asg")
    r.add_argument("--runtime", default="{}", help="runtime keys of the render section as JSON (cache_dir ...)")
    add_runtime_args(r, device=False, threads=False)

    pol = sub.add_parser("policy", help="train the learning-rate policy on the synthetic source")
    pol.add_argument("--source", required=True, help="synthetic images.h5")
    pol.add_argument("--out", required=True, help="policy.pt to write")
    pol.add_argument("--figure", required=True, help="schedule figure of the training episodes")
    add_config_args(pol, "asg", runtime=True)
    add_runtime_args(pol)

    f = sub.add_parser("finetune", help="fine-tune every method once, evaluate on each real target")
    f.add_argument("--source", required=True, help="synthetic images.h5")
    f.add_argument("--policy", help="policy.pt (needed when methods include asg)")
    f.add_argument("--target", required=True, nargs="+", help="target task ids")
    f.add_argument("--target-h5", required=True, nargs="+", help="each target's data.h5 (test split evaluated)")
    f.add_argument("--out-root", required=True, help="writes <out-root>/<target>/<method>/... per target")
    add_config_args(f, "asg", runtime=True)
    add_runtime_args(f)
    f.add_argument("--stop-after-epoch", type=int, default=None,
                   help="return after this many epochs (over all methods), leaving a checkpoint to resume from")

    s = sub.add_parser("summary", help="markdown summary of metrics.tsv files")
    s.add_argument("metrics", nargs="+", help="<root>/<label...>/<target>/<method>/metrics.tsv files")
    s.add_argument("--root", required=True, help="the folder run labels are relative to")
    s.add_argument("--out", required=True, help="summary.md to write")
    s.add_argument("--title", default="ASG summary")
    s.add_argument("--per-run", action="store_true",
                   help="the runs are different settings (a sweep), not seeds: do not pool them")
    s.add_argument("--figure", help="also draw every target's accuracy curves over runs (mean ± sd band) here")
    return p.parse_args(argv)


def _cfg(args: argparse.Namespace):
    from ..asg.train import ASGConfig
    from ..backbones.runtime import resolve_device
    return stage_config(args, ASGConfig, "asg", device=str(resolve_device(args.device)))


def run_render(args: argparse.Namespace) -> dict:
    from ..asg.data import DIGIT_CLASSES, render_digits
    from ..asg.train import ASGConfig
    from ..bits import validate_bits
    from ..config import config_from_dict, section_defaults
    from ..render.dataset import RenderConfig

    data = json_object_arg(args.config, "--config")
    config_from_dict(ASGConfig, data, "asg", device="cpu")   # validates the section (one-line errors)
    asg = {**section_defaults("asg"), **data}
    rc = {**json_object_arg(args.render_config, "--render-config"), **json_object_arg(args.runtime, "--runtime")}
    rc.pop("vary_bits", None)
    rc.update(classes=len(DIGIT_CLASSES), images_per_class=asg["source_images_per_class"],
              meshes_per_class=asg["source_meshes_per_class"], image_size=asg["source_image_size"])
    cfg = config_from_dict(RenderConfig, rc, "render")
    bits = validate_bits(args.bits)
    rec = Provenance.start("asg_render", cfg, seeds={"seed": args.seed}, bits=bits, classes=DIGIT_CLASSES,
                           style=asg["source_style"])
    summary = render_digits(cfg, bits, args.out, args.preview, seed=args.seed, style=asg["source_style"])
    rec.finish([args.out, args.preview], extra=summary)
    return summary


def run_policy(args: argparse.Namespace) -> dict:
    from ..asg.data import load_renders
    from ..asg.report import plot_schedule
    from ..asg.train import train_policy
    from ..asg.policy import save_lr_policy
    from ..backbones.imagenet import weights_file

    cfg = _cfg(args)
    rec = Provenance.start("asg_policy", cfg, seeds={"seed": args.seed},
                           inputs=[args.source, weights_file(cfg.model, cfg.checkpoint)])
    t0 = time.perf_counter()
    src = load_renders(args.source, cfg.input_size, cfg.source_val_fraction, args.seed)
    policy, info = train_policy(cfg, src, args.seed)
    save_lr_policy(args.out, policy, info["group_names"], cfg.model, cfg.input_size)
    eps = info["episodes"]
    shown = sorted({0, len(eps) // 2, len(eps) - 1})   # first, middle and last episode
    plot_schedule([(f"episode {eps[i]['episode']} (held-out loss {eps[i]['start_loss']:.2f}->"
                    f"{eps[i]['end_loss']:.2f})", eps[i]["schedule"]) for i in shown], info["group_names"],
                  args.figure, f"Policy training ({len(eps)} episodes, {len(info['updates'])} updates): sampled "
                  "lr scale per layer group (synthetic source only)")
    extra = {"episodes": [{k: v for k, v in e.items() if k != "schedule"} for e in eps],
             "updates": info["updates"], "seconds": round(time.perf_counter() - t0, 2)}
    rec.finish([args.out, args.figure], extra=extra)
    return {"episodes": len(eps), "final_source_val_acc": eps[-1]["source_val_acc"], "seconds": extra["seconds"]}


def run_finetune(args: argparse.Namespace) -> dict:
    from ..asg.data import load_renders, load_target, probe_photos
    from ..asg.policy import load_lr_policy
    from ..asg.report import (
        metrics_rows,
        plot_curves,
        plot_schedule,
        save_asg_model,
        write_metrics_tsv,
        write_schedule_tsv,
    )
    from ..asg.train import CHECKPOINT_DIR, FinetuneCheckpoint, finetune, finetune_fingerprint
    from ..checkpoint import StopRequested
    from ..errors import Task2SimError
    from ..backbones.imagenet import weights_file
    from ..provenance import sha256_file

    cfg = _cfg(args)
    if len(args.target) != len(args.target_h5):
        raise ValueError(f"--target ({len(args.target)}) and --target-h5 ({len(args.target_h5)}) "
                         "must have one entry per target")
    policy = None
    inputs = [args.source, weights_file(cfg.model, cfg.checkpoint)]
    if "asg" in cfg.methods:
        if not args.policy:
            raise Task2SimError("method asg needs --policy")
        policy, pc = load_lr_policy(args.policy)
        if pc["model"] != cfg.model:
            raise Task2SimError(f"{args.policy}: trained for {pc['model']}, not {cfg.model}")
        inputs.append(args.policy)
    src = load_renders(args.source, cfg.input_size, cfg.source_val_fraction, args.seed)
    targets = {t: load_target(p, src.class_names, cfg.input_size) for t, p in zip(args.target, args.target_h5)}
    fp = finetune_fingerprint(cfg, args.seed, [sha256_file(p) for p in inputs + list(args.target_h5)],
                              list(args.target))
    ckpt = FinetuneCheckpoint(Path(args.out_root) / CHECKPOINT_DIR, fp, args.stop_after_epoch)
    t0 = time.perf_counter()
    # One training per method: the targets are only evaluated, so every target shares it.
    try:
        runs = finetune(cfg, src, targets, probe_photos(cfg.probe_size), args.seed, policy=policy, checkpoint=ckpt)
    except StopRequested as stop:
        return {"finished": False, "message": str(stop), "epochs_run": ckpt.epochs_run}
    seconds = round(time.perf_counter() - t0, 1)
    final: dict[str, dict] = {}
    for target, task_h5 in zip(args.target, args.target_h5):
        out = Path(args.out_root) / target
        final[target] = {}
        for method, r in runs.items():
            d = out / method
            rec = Provenance.start("asg_finetune", cfg, seeds={"seed": args.seed}, inputs=inputs + [task_h5],
                                   method=method, target=target, targets=list(args.target))
            save_asg_model(d / "model.pt", r["net"], cfg, method, src.class_names, r["base_lrs"], r["group_names"])
            write_metrics_tsv(r["history"], d / "metrics.tsv", target)
            outputs = [d / "model.pt", d / "metrics.tsv"]
            if r["schedule"]:
                write_schedule_tsv(r["schedule"], r["group_names"], d / "schedule.tsv")
                outputs.append(d / "schedule.tsv")
            last = metrics_rows(r["history"], target)[-1]
            final[target][method] = {k: last[k] for k in ("target_acc", "target_mean_class_acc", "source_val_acc",
                                                          "imagenet_agreement")}
            rec.finish(outputs, extra={"final": final[target][method], "history": metrics_rows(r["history"], target),
                                       "train_seconds_all_methods": seconds,
                                       "resumed_from_epoch": ckpt.resumed_from_epoch[method],
                                       "epochs_run": ckpt.epochs_run[method]})
        plot_curves({m: metrics_rows(r["history"], target) for m, r in runs.items()}, target, out / "curves.png")
        if "asg" in runs:
            plot_schedule([(f"ASG fine-tuning (frozen policy, {cfg.policy_act})", runs["asg"]["schedule"])],
                          runs["asg"]["group_names"], out / "schedule.png",
                          "Learned lr scale per layer group over training")
    ckpt.remove()  # finished: the outputs are written, the checkpoint only served resuming
    return {"finished": True, "final": final, "seconds": seconds, "resumed_from_epoch": ckpt.resumed_from_epoch,
            "epochs_run": ckpt.epochs_run}


def run_summary(args: argparse.Namespace) -> dict:
    from ..asg.report import plot_seed_curves, read_metrics_tsv, run_key, summary_markdown
    from ..io import atomic_path

    rec = Provenance.start("asg_summary", None, inputs=args.metrics, title=args.title, root=args.root)
    runs = {run_key(p, args.root): read_metrics_tsv(p) for p in args.metrics}
    text = summary_markdown(runs, args.title, pool=not args.per_run)
    with atomic_path(args.out, suffix=".md") as tmp:
        Path(tmp).write_text(text)
    outputs = [args.out]
    if args.figure:
        outputs.append(plot_seed_curves(runs, args.figure))
    rec.finish(outputs, extra={"runs": sorted({label for label, _, _ in runs})})
    return {"runs": len(runs), "out": args.out}


def run(args: argparse.Namespace) -> dict:
    return {"render": run_render, "policy": run_policy, "finetune": run_finetune,
            "summary": run_summary}[args.command](args)


main = stage_main(run, parse_args, __name__)
