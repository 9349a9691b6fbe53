"""The final stage: configurations per method, backbone scores, one-shot backbones, the comparison.

Usage::

    # the configuration each method gives each task (Task2Sim's predictions, measured selection,
    # Random, DR, the fixed rules), and the fixed rules fitted on every seen task
    python -m task2sim.cli.final choose --table results/rewards/table.tsv \
        --measured results/rewards/train_loo.tsv \
        --predictions results/policy/predictions.tsv --policy results/policy/policy.pt \
        --config '{"random_seed": 0, "random_draws": 3}' --out results/final/choices.tsv \
        --fixed-out results/final/fixed_rules.tsv

    # one backbone (a model.pt, or --source scratch / imagenet) on several tasks: 5-NN + linear probe
    python -m task2sim.cli.final score --source 00000001 --model results/pretrain/00000001/model.pt \
        --task digits8 faces --task-h5 results/tasks/{digits8,faces}/data.h5 \
        --config '{"evaluations": ["knn5", "linear"]}' --evaluate '{...evaluate section...}' \
        --reward '{"k": 5, "temperature": 0.07}' --out results/final/scores/reward/00000001.tsv \
        --features results/features/00000001/{digits8,faces}.npz   # the reward stage's, if there

    # one-shot: a new task's configuration from the saved policy (no refit), then its
    # final-budget backbone and that backbone's evaluation
    python -m task2sim.cli.final predict --task mydata --policy results/policy/policy.pt \
        --task2vec results/task2vec/mydata.npz --out results/final/mydata/prediction.json
    # or (final.selection: measure) measured selection: every reward-budget backbone scored by
    # 5-NN left-one-out on the task's training split, the best taken
    python -m task2sim.cli.final measure --task mydata --task-h5 results/tasks/mydata/data.h5 \
        --models results/pretrain/*/model.pt --reward '{"k": 5, "temperature": 0.07}' \
        --out results/final/mydata/prediction.json
    python -m task2sim.cli.final oneshot --task mydata --prediction results/final/mydata/prediction.json \
        --model results/final/budgets/c32_i180/pretrain/00000001/model.pt \
        --best-fixed-model results/final/budgets/c32_i180/pretrain/00000000/model.pt \
        --task-h5 results/tasks/mydata/data.h5 --config '{...}' --evaluate '{...}' --reward '{...}' \
        --out-dir results/final/mydata

    # the fine-tune recipe (named target finetune_recipe): each grid point's mean validation top-1
    # over a few seen tasks, from the provenance records of score jobs run with a fine-tune grid
    python -m task2sim.cli.final recipe --scores results/final/recipe/reward/00000000.tsv \
        results/final/recipe/ref/scratch.tsv --md results/final/recipe/summary.md \
        --tsv results/final/recipe/grid.tsv --yaml results/final/recipe/recipe.yaml \
        --png results/final/recipe/recipe.png

    # the comparison tables and figures; the scaling study
    python -m task2sim.cli.final summary --choices results/final/choices.tsv --budget reward=reward \
        --budget final=c32_i180 --scores results/final/scores/*/*.tsv --config '{...}' ...
    python -m task2sim.cli.final scaling --choices results/final/choices.tsv --budgets c32_i60 c32_i180 \
        --scores ... --tsv results/final/scaling.tsv --png results/final/scaling.png

``--config`` is the ``final`` section; ``--evaluate`` and ``--reward`` are the ``evaluate`` and
``reward`` sections (linear-probe grid, validation fraction; k and temperature). Every output gets
its provenance record. Bad input prints one line ``error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import add_config_args, add_runtime_args, json_object_arg, stage_config, stage_main, stage_parser
from ..io import write_json
from ..provenance import Provenance


def _sections(p: argparse.ArgumentParser) -> None:
    p.add_argument("--evaluate", required=True, help="the config's evaluate section as a JSON object")
    p.add_argument("--reward", required=True, help="the config's reward section as a JSON object")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "final")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("choose", help="configuration per (task, method)")
    c.add_argument("--table", required=True, help="reward table.tsv")
    c.add_argument("--predictions", required=True, help="predictions.tsv of the policy stage")
    c.add_argument("--policy", required=True, help="policy.pt (names the predictor)")
    c.add_argument("--measured", required=True,
                   help="train_loo.tsv of the reward stage (5-NN left-one-out on each training split)")
    c.add_argument("--out", required=True, help="choices.tsv to write")
    c.add_argument("--fixed-out", required=True,
                   help="fixed_rules.tsv to write: each fixed rule fitted on every seen task (a new task's)")
    add_config_args(c, "final")
    add_runtime_args(c, device=False, threads=False)
    s = sub.add_parser("score", help="one backbone on several tasks")
    s.add_argument("--source", required=True, help="config string of the backbone, or scratch / imagenet")
    s.add_argument("--model", help="model.pt (config-string sources)")
    s.add_argument("--model-name", help="scratch: the architecture")
    s.add_argument("--image-size", type=int, help="scratch and imagenet: input size")
    s.add_argument("--task", nargs="+", required=True, help="task ids")
    s.add_argument("--task-h5", nargs="+", required=True, help="each task's data.h5")
    s.add_argument("--features", nargs="+",
                   help="the reward stage's feature caches (.npz), one per task: read, never written (a "
                        "missing or stale one is computed in memory)")
    s.add_argument("--out", required=True, help="scores .tsv to write")
    add_config_args(s, "final")
    _sections(s)
    add_runtime_args(s)
    r = sub.add_parser("predict", help="a new task's configuration from the saved policy, without refitting")
    r.add_argument("--task", required=True)
    r.add_argument("--policy", required=True, help="policy.pt of the policy stage")
    r.add_argument("--task2vec", required=True, help="the task's Task2Vec .npz")
    r.add_argument("--out", required=True, help="prediction.json to write")
    add_runtime_args(r, device=False, threads=False)
    e = sub.add_parser("measure", help="a new task's configuration by measured selection (training split only)")
    e.add_argument("--task", required=True)
    e.add_argument("--task-h5", required=True, help="the task's data.h5 (its training split is read)")
    e.add_argument("--models", nargs="+", required=True,
                   help="the reward-budget backbones, one per configuration (results/pretrain/{bits}/model.pt)")
    e.add_argument("--reward", required=True, help="the config's reward section as a JSON object")
    e.add_argument("--out", required=True, help="prediction.json to write")
    add_runtime_args(e)
    o = sub.add_parser("oneshot", help="a task's backbone at its chosen configuration, and its evaluation")
    o.add_argument("--task", required=True)
    o.add_argument("--prediction", required=True, help="the task's prediction.json (subcommand predict or measure)")
    o.add_argument("--model", required=True, help="the final-budget backbone of the chosen configuration")
    o.add_argument("--task-h5", required=True)
    o.add_argument("--best-fixed-model",
                   help="the final-budget backbone of the best single configuration on the seen tasks, scored "
                        "beside the task's backbone on the same split (as is the ImageNet reference)")
    o.add_argument("--out-dir", required=True, help="writes model.pt and evaluation.json")
    add_config_args(o, "final")
    _sections(o)
    add_runtime_args(o)
    m = sub.add_parser("summary", help="summary.md/.tsv and the per-task bar charts")
    m.add_argument("--choices", required=True)
    m.add_argument("--scores", nargs="+", required=True, help="score TSVs (.../scores/{budget}/{source}.tsv)")
    m.add_argument("--budget", action="append", required=True, help="label=budget, e.g. final=c32_i180")
    m.add_argument("--policy", required=True, help="policy.pt (names the predictor)")
    m.add_argument("--md", required=True)
    m.add_argument("--tsv", required=True)
    m.add_argument("--png-seen", required=True)
    m.add_argument("--png-unseen", required=True)
    m.add_argument("--model-name", required=True, help="the pre-trained architecture (for the text)")
    m.add_argument("--pretrain-epochs", type=int, required=True, help="pretrain.epochs (for the text)")
    add_config_args(m, "final")
    add_runtime_args(m, device=False, threads=False)
    g = sub.add_parser("scaling", help="Task2Sim vs Domain Randomisation against the image budget")
    g.add_argument("--choices", required=True)
    g.add_argument("--scores", nargs="+", required=True)
    g.add_argument("--budgets", nargs="+", required=True)
    g.add_argument("--tsv", required=True)
    g.add_argument("--png", required=True)
    add_runtime_args(g, device=False, threads=False)
    f = sub.add_parser("recipe", help="one fine-tune recipe per row type, chosen on validation of seen tasks")
    f.add_argument("--scores", nargs="+", required=True,
                   help="score TSVs of jobs run with a fine-tune grid (their provenance records hold the grid)")
    f.add_argument("--md", required=True, help="summary.md to write")
    f.add_argument("--tsv", required=True, help="grid.tsv to write: every task's validation top-1 per grid point")
    f.add_argument("--yaml", required=True, help="recipe.yaml to write: the chosen recipes as config")
    f.add_argument("--png", required=True, help="mean validation top-1 against epochs")
    add_runtime_args(f, device=False, threads=False)
    return p.parse_args(argv)


def _final_cfg(args):
    from ..final import FinalConfig

    return stage_config(args, FinalConfig, "final")


def _predictor_name(policy: str) -> str:
    from ..policy.stage import load_policy

    return str(load_policy(policy)["info"]["predictor"])


def run_choose(args: argparse.Namespace) -> dict:
    from ..final import CHOICE_COLUMNS, read_tsv
    from ..final.choose import choose_configs, seen_rules
    from ..io import write_tsv
    from ..policy.data import ConfigSpace
    from ..reward.table import read_table_tsv

    cfg = _final_cfg(args)
    table = read_table_tsv(args.table)
    vary = ConfigSpace.from_configs(b for row in table.values() for b in row).vary_bits
    predictor = _predictor_name(args.policy)
    rec = Provenance.start("final_choose", cfg, seeds={"random_seed": cfg.random_seed},
                           inputs=[args.table, args.measured, args.predictions, args.policy], vary_bits=list(vary),
                           predictor=predictor)
    predictions = read_tsv(args.predictions)
    rows = choose_configs(table, predictions, vary, cfg.random_seed, read_table_tsv(args.measured),
                          cfg.random_draws)
    write_tsv(args.out, CHOICE_COLUMNS, rows)
    write_tsv(args.fixed_out, ["rule", "bits"],
              [{"rule": r, "bits": b} for r, b in seen_rules(table, predictions, vary).items()])
    rec.finish([args.out, args.fixed_out])
    return {"tasks": len({r["task"] for r in rows}), "configs": sorted({r["bits"] for r in rows})}


def _eval_cfgs(args, image_size: int, scratch: bool) -> dict:
    from ..config import config_from_dict, section_defaults
    from ..train.evaluate import EvalConfig

    ev = json_object_arg(args.evaluate, "--evaluate")
    val_fraction = ev.get("val_fraction", section_defaults("evaluate")["val_fraction"])
    out = {}
    for method in ("linear", "finetune"):
        section = {**ev.get(method, {}), "val_fraction": val_fraction}
        real = "scratch" if (method == "finetune" and scratch) else method
        if real == "scratch":
            section = {**ev.get("scratch", {}), "val_fraction": section["val_fraction"]}
        out[method] = config_from_dict(EvalConfig, section, f"evaluate.{real}", method=real, image_size=image_size,
                                       seed=args.seed, device=args.device)
    return out


def _load(args, source: str, model: str | None, cfg):
    """The backbone behind ``source`` (a checkpoint, ``scratch`` or ``imagenet``) as scoring feeds it."""
    from ..backbones.features import load_source

    return load_source(source, model, getattr(args, "model_name", None),
                       getattr(args, "image_size", None) or cfg.imagenet_image_size, args.seed)


def _score(args, bb, tasks: dict[str, str], cfg) -> list[dict]:
    from ..config import config_from_dict
    from ..final.score import score_backbone
    from ..reward.knn import RewardConfig

    rw = config_from_dict(RewardConfig, json_object_arg(args.reward, "--reward"), "reward")
    cfgs = _eval_cfgs(args, bb.image_size, scratch=bb.source == "scratch")
    caches = dict(zip(tasks, args.features)) if getattr(args, "features", None) else None
    return score_backbone(bb, tasks, cfg.evaluations, cfgs, rw.k, rw.temperature, args.seed, args.device, caches,
                          rw.batch_size, rw.amp)


def run_score(args: argparse.Namespace) -> dict:
    from ..final import SCORE_COLUMNS
    from ..io import write_tsv

    cfg = _final_cfg(args)
    if len(args.task) != len(args.task_h5):
        raise ValueError(f"--task ({len(args.task)}) and --task-h5 ({len(args.task_h5)}) must be parallel lists")
    if args.features and len(args.features) != len(args.task):
        raise ValueError(f"--features ({len(args.features)}) must have one entry per --task ({len(args.task)})")
    if (args.model is None) != (args.source in ("scratch", "imagenet")):
        raise ValueError(f"source {args.source}: --model is for config-string sources only, and required there")
    if args.source == "scratch" and not (args.model_name and args.image_size):
        raise ValueError("source scratch takes --model-name and --image-size")
    tasks = dict(zip(args.task, args.task_h5))
    rec = Provenance.start("final_score", cfg, seeds={"seed": args.seed},
                           inputs=[p for p in [args.model, *args.task_h5] if p], source=args.source,
                           feature_caches=args.features or [],
                           evaluate=json_object_arg(args.evaluate, "--evaluate"),
                           reward=json_object_arg(args.reward, "--reward"))
    bb = _load(args, args.source, args.model, cfg)
    rows = _score(args, bb, tasks, cfg)
    write_tsv(args.out, SCORE_COLUMNS, [{**r, "chosen": json.dumps(r["chosen"], sort_keys=True)} for r in rows])
    rec.finish([args.out], extra={"model_name": bb.name, "image_size": bb.image_size, "rows": rows})
    return {"source": args.source, "scored": len(rows)}


def run_predict(args: argparse.Namespace) -> dict:
    from ..policy.data import load_task2vec
    from ..policy.stage import load_policy, predict_tasks

    ckpt = load_policy(args.policy)
    emb = load_task2vec([args.task2vec])
    if list(emb) != [args.task]:
        raise ValueError(f"{args.task2vec}: holds the Task2Vec of {sorted(emb)}, not of task {args.task!r}")
    info = ckpt["info"]
    rec = Provenance.start("final_predict", seeds={"seed": args.seed}, inputs=[args.policy, args.task2vec],
                           task=args.task, predictor=info["predictor"])
    row = predict_tasks(ckpt, emb)[0]
    prediction = {**row, "selection": "predict", "predictor": info["predictor"], "fitted_on": info["seen"],
                  "policy": str(args.policy)}
    write_json(args.out, prediction)
    rec.finish([args.out], extra={"bits": row["bits"], "p_bits": row["p_bits"]})
    return {"task": args.task, "bits": row["bits"], "p_bits": row["p_bits"]}


def run_measure(args: argparse.Namespace) -> dict:
    from ..backbones.features import load_source
    from ..bits import configs_for
    from ..config import config_from_dict
    from ..final.choose import measured_config
    from ..policy.data import ConfigSpace
    from ..reward.knn import RewardConfig, train_loo_score

    rw = config_from_dict(RewardConfig, json_object_arg(args.reward, "--reward"), "reward")
    models, backbones = {}, {}
    for path in args.models:
        bb = load_source("measured", path)  # each checkpoint read once: its cfg and its network
        bits = bb.cfg.get("render_bits")
        if not bits:
            raise ValueError(f"{path}: not a backbone pre-trained on a rendered configuration (no render_bits)")
        if bits in models:
            raise ValueError(f"--models: two backbones of configuration {bits} ({models[bits]}, {path})")
        models[bits], backbones[bits] = path, bb
    if len(models) < 2:
        raise ValueError("--models: measured selection needs the backbones of at least two configurations")
    configs = configs_for(ConfigSpace.from_configs(models).vary_bits)
    if sorted(configs) != sorted(models):
        raise ValueError(f"--models: {len(models)} backbones, but their configurations span {len(configs)}: "
                         "measured selection needs one backbone per configuration")
    rec = Provenance.start("final_measure", rw, seeds={"seed": args.seed}, inputs=[args.task_h5, *args.models],
                           task=args.task)
    scores, n_train = {}, 0
    for bits in configs:
        scores[bits], n_train = train_loo_score(backbones[bits], args.task_h5, rw.k, rw.temperature, rw.batch_size,
                                                args.device, progress=not args.no_progress, amp=rw.amp)
    bits = measured_config(args.task, {args.task: scores}, configs)
    prediction = {"task": args.task, "bits": bits, "selection": "measure", "predictor": "measured",
                  "train_loo": scores, "n_train": n_train, "k": rw.k, "models": models}
    write_json(args.out, prediction)
    rec.finish([args.out], extra={"bits": bits, "train_loo": scores})
    return {"task": args.task, "bits": bits, "train_loo": scores[bits]}


def run_oneshot(args: argparse.Namespace) -> dict:
    from ..backbones.features import checkpoint_backbone
    from ..backbones.models import load_backbone, save_backbone
    from ..final import FinalError

    cfg = _final_cfg(args)
    prediction = json_object_arg(Path(args.prediction).read_text(), args.prediction)
    if prediction.get("task") != args.task or "bits" not in prediction:
        raise FinalError(f"{args.prediction}: not a prediction for task {args.task!r}")
    if prediction.get("selection") != cfg.selection:
        raise FinalError(f"{args.prediction}: made by selection {prediction.get('selection')!r}, "
                           f"but final.selection is {cfg.selection!r}")
    # p_bits: the predictor's probabilities (selection predict); measured selection has scores instead
    bits, probs = prediction["bits"], prediction.get("p_bits")
    out = Path(args.out_dir)
    fixed = None
    if args.best_fixed_model:
        model, info = load_backbone(args.best_fixed_model)
        if not info.get("render_bits"):
            raise FinalError(f"{args.best_fixed_model}: not a backbone pre-trained on a rendered configuration")
        fixed = checkpoint_backbone(info["render_bits"], model, info, args.best_fixed_model)
    rec = Provenance.start("final_oneshot", cfg, seeds={"seed": args.seed},
                           inputs=[p for p in (args.prediction, args.model, args.best_fixed_model, args.task_h5) if p],
                           task=args.task, bits=bits, p_bits=probs, selection=cfg.selection)
    model, info = load_backbone(args.model)
    # The backbone, saved again with what it is for: the task and the predicted configuration.
    save_backbone(out / "model.pt", model, info["architecture"], int(info["input_size"][-1]), info["mean"],
                  info["std"], task2sim_task=args.task, task2sim_bits=bits, task2sim_p_bits=probs,
                  task2sim_selection=cfg.selection,
                  source_checkpoint=str(args.model))
    bb = checkpoint_backbone(bits, model, info, args.model)
    task = {args.task: args.task_h5}
    rows = _score(args, bb, task, cfg)
    results = {r["evaluation"]: r for r in rows}
    # On the same split, what the backbone is worth: the best single configuration's backbone at
    # the same budget (what one gets without any selection) and the real ImageNet reference.
    baselines = {}
    if fixed is not None:
        # the same configuration at the same budget is the same backbone: its rows again
        b_rows = rows if fixed.source == bits else _score(args, fixed, task, cfg)
        baselines["best_fixed"] = {"bits": fixed.source, "model": str(args.best_fixed_model),
                                   "results": {r["evaluation"]: r for r in b_rows}}
    ibb = _load(args, "imagenet", None, cfg)
    baselines["imagenet"] = {"model_name": ibb.name, "image_size": ibb.image_size,
                             "results": {r["evaluation"]: r for r in _score(args, ibb, task, cfg)}}
    margins = {name: {ev: round(results[ev]["top1"] - r["top1"], 4) for ev, r in b["results"].items() if ev in results}
               for name, b in baselines.items()}
    evaluation = {"task": args.task, "bits": bits, "selection": cfg.selection, "model": str(out / "model.pt"),
                  "model_name": bb.name, "image_size": bb.image_size, "results": results,
                  "baselines": baselines, "margins": margins}
    write_json(out / "evaluation.json", evaluation)
    rec.finish([out / "model.pt", out / "evaluation.json"],
               extra={**{ev: r["top1"] for ev, r in results.items()}, "margins": margins})
    return {"task": args.task, "bits": bits, **{ev: r["top1"] for ev, r in results.items()}, "margins": margins}


def run_summary(args: argparse.Namespace) -> dict:
    from ..bits import configs_for
    from ..final import CONFIG_METHODS, FinalError, budget_evaluations, parse_budget, read_tsv
    from ..final.choose import FIXED_RULES, picks, rule_configs_text
    from ..final.report import (SUMMARY_COLUMNS, margin_rows, mean_over_seeds, method_scores, plot_per_task,
                                summary_markdown, summary_rows)
    from ..final.score import read_scores_by_seed
    from ..io import atomic_path, write_tsv

    cfg = _final_cfg(args)
    budgets = dict(b.split("=", 1) for b in args.budget)
    choices = read_tsv(args.choices)
    by_seed = read_scores_by_seed(args.scores)
    seeds = [str(args.seed) if s is None else s for s in by_seed]
    splits = {c["task"]: c["split"] for c in choices if c["split"] != "new"}
    pick = picks(choices)
    first = next(iter(splits))
    # Random's draws (shared by every task), and the space (every varied bit is on in DR's configuration)
    dr = pick[(first, "domain_randomisation")][0]
    configs = configs_for([i for i, c in enumerate(dr) if c == "1"])
    draws, n_configs = len(pick[(first, "random")]), len(configs)
    at_reward = budget_evaluations(cfg.evaluations, cfg.finetune_at, "reward")
    for seed, scores in zip(seeds, by_seed.values()):
        missing = sorted({(t, b) for t in splits for b in configs for ev in at_reward
                          if ("reward", b, t, ev) not in scores})
        if "reward" in budgets.values() and missing:
            raise FinalError(f"scores: reward-budget configuration {missing[0][1]} is not scored on task "
                               f"{missing[0][0]!r} at seed {seed} (Random there is the mean over every configuration)")
    ms_by_seed = {seed: method_scores(choices, scores, budgets, cfg.evaluations,
                                      final_methods=cfg.final_budget_methods, all_configs=configs)
                  for seed, scores in zip(seeds, by_seed.values())}
    rows = summary_rows(ms_by_seed, splits)
    titles = {}
    for label, b in budgets.items():
        if b == "reward":
            titles[label] = (f"{label} budget: the reward table's backbones, {args.pretrain_epochs} epochs "
                             "(no new pre-training)")
        else:
            c, i = parse_budget(b)
            titles[label] = (f"{label} budget: {c} classes x {i} images = {c * i} rendered images, "
                             f"{cfg.epochs or args.pretrain_epochs} epochs (methods pre-trained: "
                             f"{', '.join(cfg.final_budget_methods)}; n/a: not pre-trained at this budget)")
        if "finetune" in cfg.evaluations and "finetune" not in budget_evaluations(cfg.evaluations, cfg.finetune_at, b):
            titles[label] += "; fine-tune: n/a at this budget but for Scratch (final.finetune_at)"
    n_split = {k: sum(s == k for s in splits.values()) for k in ("seen", "unseen")}
    info = {"n_seen": n_split["seen"], "n_unseen": n_split["unseen"],
            "predictor": _predictor_name(args.policy), "random_seed": cfg.random_seed, "seed": args.seed,
            "random_draws": draws, "n_configs": n_configs,
            "random_exact": ": all of them, the exact mean" if draws == n_configs else f" out of {n_configs}",
            "dr_bits": pick[(first, "domain_randomisation")][0],
            "fixed_bits": {r: rule_configs_text(choices, r) for r in FIXED_RULES},
            "imagenet_size": cfg.imagenet_image_size, "model": args.model_name, "budget_titles": titles,
            "margins": margin_rows(ms_by_seed, splits), "seeds": seeds}
    inputs = [args.choices, *args.scores, args.policy]
    rec = Provenance.start("final_summary", cfg, seeds={"seed": args.seed, "evaluation_seeds": seeds}, inputs=inputs,
                           budgets=budgets)
    write_tsv(args.tsv, SUMMARY_COLUMNS, rows)
    with atomic_path(args.md, suffix=".md.part") as tmp:
        tmp.write_text(summary_markdown(rows, budgets, cfg.evaluations, choices, info))
    ms = mean_over_seeds(ms_by_seed)
    for split, png in (("seen", args.png_seen), ("unseen", args.png_unseen)):
        plot_per_task(ms, splits, split, list(budgets), cfg.evaluations, png,
                      f"Per-task top-1 on the {split} tasks "
                      f"({'seed' if len(seeds) == 1 else 'mean over seeds'} {', '.join(seeds)})")
    rec.finish([args.md, args.tsv, args.png_seen, args.png_unseen],
               extra={"methods": list(CONFIG_METHODS), "rows": rows, "margins": info["margins"]})
    return {"rows": len(rows)}


def run_scaling(args: argparse.Namespace) -> dict:
    from ..final import read_tsv
    from ..final.report import plot_scaling, scaling_rows
    from ..final.score import read_scores
    from ..io import write_tsv

    rec = Provenance.start("final_scaling", seeds={"seed": args.seed}, inputs=[args.choices, *args.scores],
                           budgets=args.budgets)
    rows = scaling_rows(read_tsv(args.choices), read_scores(args.scores), args.budgets)
    write_tsv(args.tsv, ("budget", "classes", "images", "method", "seen_mean", "n_tasks"), rows)
    plot_scaling(rows, args.png, f"Linear probe vs pre-training images (seen tasks, seed {args.seed})")
    rec.finish([args.tsv, args.png], extra={"rows": rows})
    return {"rows": rows}


def run_recipe(args: argparse.Namespace) -> dict:
    import yaml

    from ..final import FinalError
    from ..final.recipe import (GRID_COLUMNS, choose_recipe, grid_rows, plot_recipe, recipe_config, recipe_markdown,
                                recipe_means)
    from ..io import atomic_path, write_tsv
    from ..provenance import record_of

    records, paths = [], []
    for score in args.scores:
        path = record_of(score)
        if path is None:  # a record lists its outputs as its job named them: pass them the same way
            raise FinalError(f"{score}: no provenance record beside it lists it as an output (it holds the grid)")
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise FinalError(f"{path}: cannot read the provenance record ({e})") from None
        paths.append(path)
    seeds = sorted({str(r.get("seeds", {}).get("seed")) for r in records})
    if len(seeds) != 1:
        raise FinalError(f"--scores: scored at different seeds ({', '.join(seeds)}): a recipe is chosen at one")
    rec = Provenance.start("final_recipe", seeds={"seed": args.seed, "scored_at": seeds[0]},
                           inputs=[*args.scores, *paths])
    rows = grid_rows(records, paths)
    means = recipe_means(rows)
    chosen = {s: choose_recipe(ms) for s, ms in means.items()}
    yaml_text = yaml.safe_dump(recipe_config(chosen), sort_keys=False, default_flow_style=None)
    write_tsv(args.tsv, GRID_COLUMNS, rows)
    with atomic_path(args.yaml, suffix=".yaml.part") as tmp:
        tmp.write_text(f"# written by the named target finetune_recipe ({args.md}), chosen on validation at "
                       f"seed {seeds[0]}\n" + yaml_text)
    with atomic_path(args.md, suffix=".md.part") as tmp:
        tmp.write_text(recipe_markdown(rows, means, chosen, seeds[0], yaml_text))
    n_tasks = sorted({c["n_tasks"] for c in chosen.values()})
    plot_recipe(means, chosen, args.png, f"Fine-tune grid on validation (seed {seeds[0]}, "
                f"{' and '.join(map(str, n_tasks))} seen task{'s' if n_tasks[-1] > 1 else ''})")
    rec.finish([args.md, args.tsv, args.yaml, args.png], extra={"means": means, "chosen": chosen})
    return {s: c["point"] for s, c in chosen.items()}


def run(args: argparse.Namespace) -> dict:
    return {"choose": run_choose, "score": run_score, "predict": run_predict, "measure": run_measure,
            "oneshot": run_oneshot,
            "summary": run_summary,
            "scaling": run_scaling,
            "recipe": run_recipe}[args.command](args)


main = stage_main(run, parse_args, __name__)
