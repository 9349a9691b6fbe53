# The payoff (docs/final.md): one-shot backbones for tasks outside the reward table, and the final
# comparison of Task2Sim against its baselines (results/final/summary.md).
# final_choose (a checkpoint) reads the policy's predictions, the reward table and its training-split
# twin (measured selection) and fixes the
# configuration of every (task, method); the backbones those configurations need are rendered and
# pre-trained once per (budget, configuration) through the {budget}/{bits} wildcards, whichever
# tasks and methods share them. Code: task2sim.final (choose, score, report), CLI task2sim.cli.final.


include: "final_common.smk"


checkpoint final_choose:
    input:
        table=rules.reward_table.output.tsv,
        measured=rules.reward_table.output.measured,
        predictions=rules.policy_train.output.predictions,
        policy=rules.policy_train.output.policy,
    output:
        tsv="results/final/choices.tsv",
        # the fixed rules fitted on every seen task: what a task outside the table gets (one-shot)
        fixed="results/final/fixed_rules.tsv",
        meta="results/final/choices.meta.json",
    log:
        "logs/final/choose.log",
    benchmark:
        "benchmarks/final/choose.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        config=json.dumps({k: FINAL[k] for k in ("random_seed", "random_draws")}),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final choose --table {input.table} --measured {input.measured}"
        " --predictions {input.predictions}"
        " --policy {input.policy} --config {params.config:q} --seed {params.seed} --out {output.tsv}"
        " --fixed-out {output.fixed} > {log} 2>&1"


use rule render_dataset as final_render with:
    output:
        images="results/final/budgets/{budget}/renders/{bits}/images.h5",
        preview="results/final/budgets/{budget}/renders/{bits}/preview.png",
        meta="results/final/budgets/{budget}/renders/{bits}/images.meta.json",
    log:
        "logs/final/budgets/{budget}/renders/{bits}/images.log",
    benchmark:
        "benchmarks/final/budgets/{budget}/renders/{bits}/images.tsv"
    wildcard_constraints:
        budget=r"c\d+_i\d+",
    params:
        config=final_render_config,
        seed=config["seed"],


use rule pretrain_backbone as final_pretrain with:
    input:
        images="results/final/budgets/{budget}/renders/{bits}/images.h5",
    output:
        model="results/final/budgets/{budget}/pretrain/{bits}/model.pt",
        history="results/final/budgets/{budget}/pretrain/{bits}/history.tsv",
        meta="results/final/budgets/{budget}/pretrain/{bits}/model.meta.json",
    log:
        "logs/final/budgets/{budget}/pretrain/{bits}/model.log",
    benchmark:
        "benchmarks/final/budgets/{budget}/pretrain/{bits}/model.tsv"
    wildcard_constraints:
        budget=r"c\d+_i\d+",
    params:
        out_dir="results/final/budgets/{budget}/pretrain/{bits}",
        config=final_pretrain_config,
        seed=config["seed"],


# One job per backbone: its features are computed once per task and shared by the 5-NN and the
# linear probe (the probe trains on cached features, a few seconds per task on a CPU). A
# reward-budget backbone's features are the reward stage's caches: read, not computed again, so
# its 5-NN is the reward table's cell; every such backbone is scored on every reward-table task.
rule final_score:
    input:
        unpack(final_score_inputs),
    output:
        tsv="results/final/scores/{budget}/{source}.tsv",
        meta="results/final/scores/{budget}/{source}.meta.json",
    log:
        "logs/final/scores/{budget}/{source}.log",
    benchmark:
        "benchmarks/final/scores/{budget}/{source}.tsv"
    wildcard_constraints:
        budget=r"reward|ref|c\d+_i\d+",
        source=r"[01]{8}|scratch|imagenet",
    priority: final_score_priority
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        device=config["device"],
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        tasks=lambda wildcards: " ".join(final_score_tasks(wildcards)),
        model_args=final_score_model_args,
        features=final_score_features,
        config=final_score_config,
        evaluate=final_score_evaluate,
        reward=FINAL_SECTIONS["reward"],
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final score --source {wildcards.source} {params.model_args} {params.features}"
        " --task {params.tasks} --task-h5 {input.tasks} --config {params.config:q}"
        " --evaluate {params.evaluate:q} --reward {params.reward:q} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --no-progress --out {output.tsv} > {log} 2>&1"


# final.seeds: the comparison's backbones again at seeds that fitted and chose nothing. The
# reward-budget ones come from the noise stage's rules (results/noise/{seed}/), the final-budget
# ones from these; each is scored by the same job as the run's own.
use rule final_render as final_seed_render with:
    output:
        images="results/final/seeds/{seed}/budgets/{budget}/renders/{bits}/images.h5",
        preview="results/final/seeds/{seed}/budgets/{budget}/renders/{bits}/preview.png",
        meta="results/final/seeds/{seed}/budgets/{budget}/renders/{bits}/images.meta.json",
    log:
        "logs/final/seeds/{seed}/budgets/{budget}/renders/{bits}/images.log",
    benchmark:
        "benchmarks/final/seeds/{seed}/budgets/{budget}/renders/{bits}/images.tsv"
    params:
        config=final_render_config,
        seed=lambda wildcards: wildcards.seed,


use rule final_pretrain as final_seed_pretrain with:
    input:
        images="results/final/seeds/{seed}/budgets/{budget}/renders/{bits}/images.h5",
    output:
        model="results/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}/model.pt",
        history="results/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}/history.tsv",
        meta="results/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}/model.meta.json",
    log:
        "logs/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}/model.log",
    benchmark:
        "benchmarks/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}/model.tsv"
    params:
        out_dir="results/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}",
        config=final_pretrain_config,
        seed=lambda wildcards: wildcards.seed,


use rule final_score as final_seed_score with:
    output:
        tsv="results/final/seeds/{seed}/scores/{budget}/{source}.tsv",
        meta="results/final/seeds/{seed}/scores/{budget}/{source}.meta.json",
    log:
        "logs/final/seeds/{seed}/scores/{budget}/{source}.log",
    benchmark:
        "benchmarks/final/seeds/{seed}/scores/{budget}/{source}.tsv"
    params:
        seed=lambda wildcards: wildcards.seed,


# The fine-tune recipe (docs/study.md), a named target outside `rule all`: evaluate.recipe's grid
# scored on validation for one reward-budget backbone and for Scratch, at the run's seed (never one
# of final.seeds) and on seen tasks only, by the scoring job's own command; finetune_recipe reads the
# validation scores from the jobs' provenance records and writes the chosen recipes as config.
use rule final_score as recipe_score with:
    input:
        unpack(recipe_score_inputs),
    output:
        tsv="results/final/recipe/{budget}/{source}.tsv",
        meta="results/final/recipe/{budget}/{source}.meta.json",
    log:
        "logs/final/recipe/{budget}/{source}.log",
    benchmark:
        "benchmarks/final/recipe/{budget}/{source}.tsv"
    wildcard_constraints:
        budget=r"reward|ref",
        source=r"[01]{8}|scratch",
    params:
        tasks=" ".join(RECIPE_TASKS),
        features="",
        config=_score_config(["finetune"]),
        evaluate=recipe_score_evaluate,


rule finetune_recipe:
    input:
        scores=[f"results/final/recipe/reward/{RECIPE['source']}.tsv", "results/final/recipe/ref/scratch.tsv"],
        # the scoring jobs' provenance records: each grid point's validation top-1 is there
        records=[
            f"results/final/recipe/reward/{RECIPE['source']}.meta.json",
            "results/final/recipe/ref/scratch.meta.json",
        ],
    output:
        md="results/final/recipe/summary.md",
        tsv="results/final/recipe/grid.tsv",
        yaml="results/final/recipe/recipe.yaml",
        png="results/final/recipe/recipe.png",
        meta="results/final/recipe/summary.meta.json",
    log:
        "logs/final/recipe/summary.log",
    benchmark:
        "benchmarks/final/recipe/summary.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final recipe --scores {input.scores} --md {output.md} --tsv {output.tsv}"
        " --yaml {output.yaml} --png {output.png} --seed {params.seed} > {log} 2>&1"


# A task outside the reward table (reward: false): its configuration, by final.selection (one
# checkpoint either way, so switching the setting reruns it and what follows). predict: the saved
# predictor's, from policy.pt and the task's Task2Vec alone; the policy is not fitted again (its
# inputs are the reward table's tasks only), so adding such a task reruns nothing that exists.
# measure: measured selection, every reward-budget backbone (memoised) scored by 5-NN left-one-out
# on the task's training split. The configuration decides which final-budget backbone
# final_oneshot needs.
checkpoint final_select:
    input:
        unpack(final_select_inputs),
    output:
        prediction="results/final/{task}/prediction.json",
        meta="results/final/{task}/prediction.meta.json",
    log:
        "logs/final/{task}/select.log",
    benchmark:
        "benchmarks/final/{task}/select.tsv"
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        device=config["device"],
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        args=final_select_args,
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final {params.args} --task {wildcards.task} --seed {params.seed}"
        " --out {output.prediction} > {log} 2>&1"


# The task's backbone, saved for it, and evaluation.json: scored on the task's split beside the
# best single configuration's backbone at the same budget (final_choose's best_fixed) and the
# ImageNet reference.
rule final_oneshot:
    input:
        prediction=rules.final_select.output.prediction,
        model=final_oneshot_model,
        best_fixed=final_oneshot_best_fixed,
        task=rules.tasks_prepare.output.data,
    output:
        model="results/final/{task}/model.pt",
        evaluation="results/final/{task}/evaluation.json",
        meta="results/final/{task}/model.meta.json",
    log:
        "logs/final/{task}/oneshot.log",
    benchmark:
        "benchmarks/final/{task}/oneshot.tsv"
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        device=config["device"],
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        out_dir=subpath(output.model, parent=True),
        # final.selection stays in: the one-shot record says how the configuration was chosen
        config=config_json("final", drop=FINAL_JOB_KEYS + ["random_seed", "random_draws", "seeds"]),
        evaluate=FINAL_SECTIONS["evaluate"],
        reward=FINAL_SECTIONS["reward"],
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final oneshot --task {wildcards.task} --prediction {input.prediction}"
        " --model {input.model} --best-fixed-model {input.best_fixed} --task-h5 {input.task}"
        " --config {params.config:q}"
        " --evaluate {params.evaluate:q} --reward {params.reward:q} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --no-progress --out-dir {params.out_dir} > {log} 2>&1"


rule final_summary:
    input:
        choices=rules.final_choose.output.tsv,
        policy=rules.policy_train.output.policy,
        # every reward-budget backbone and the references (at each of final.seeds, when set)
        fixed=final_fixed_scores(),
        scores=final_summary_scores,
    output:
        md=report(
            "results/final/summary.md",
            category="Final comparison",
            caption="../docs/report/final_summary.rst",
            labels={"figure": "Tables 2/3 (summary)"},
        ),
        tsv=report(
            "results/final/summary.tsv",
            category="Final comparison",
            caption="../docs/report/final_summary.rst",
            labels={"figure": "Tables 2/3 (TSV)"},
        ),
        seen=report(
            "results/final/per_task_seen.png",
            category="Final comparison",
            caption="../docs/report/final_per_task.rst",
            labels={"figure": "per-task bars (Fig. 3)", "split": "seen"},
        ),
        unseen=report(
            "results/final/per_task_unseen.png",
            category="Final comparison",
            caption="../docs/report/final_per_task.rst",
            labels={"figure": "per-task bars (Fig. 4)", "split": "unseen"},
        ),
        meta="results/final/summary.meta.json",
    log:
        "logs/final/summary.log",
    benchmark:
        "benchmarks/final/summary.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        budgets=" ".join(f"--budget {k}={v}" for k, v in comparison_budgets().items()),
        config=config_json("final", drop=["scaling_images_per_class", "selection"]),
        model=config["pretrain"]["model"],
        epochs=config["pretrain"]["epochs"],
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final summary --choices {input.choices} --policy {input.policy}"
        " --scores {input.fixed} {input.scores} {params.budgets} --model-name {params.model} --pretrain-epochs {params.epochs}"
        " --config {params.config:q}"
        " --seed {params.seed} --md {output.md} --tsv {output.tsv} --png-seen {output.seen}"
        " --png-unseen {output.unseen} > {log} 2>&1"


# The scaling study (Fig. 8): a named target, outside `rule all` (snakemake final_scaling).
rule final_scaling:
    input:
        choices=rules.final_choose.output.tsv,
        scores=final_scaling_scores,
    output:
        tsv="results/final/scaling.tsv",
        png=report(
            "results/final/scaling.png",
            category="Final comparison",
            caption="../docs/report/final_scaling.rst",
            labels={"figure": "scaling (Fig. 8)"},
        ),
        meta="results/final/scaling.meta.json",
    log:
        "logs/final/scaling.log",
    benchmark:
        "benchmarks/final/scaling.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        budgets=" ".join(scaling_budgets()),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final scaling --choices {input.choices} --scores {input.scores}"
        " --budgets {params.budgets} --seed {params.seed} --tsv {output.tsv} --png {output.png} > {log} 2>&1"


# The study (docs/study.md): the comparison on seeds, a named target outside `rule all`. Its
# settings (reward.seeds, final.seeds) come from study.yaml:
#   snakemake --cores 2 --configfile study.yaml study
rule study:
    input:
        study_inputs,


localrules:
    final_choose,
    final_summary,
    final_scaling,
    finetune_recipe,
    study,


# Only in a workflow that has the policy stage (a Snakefile of a few stages has nothing to compare).
if hasattr(rules, "policy_train"):
    FINAL_TARGETS.extend(["results/final/summary.md", "results/final/per_task_seen.png"])
    FINAL_TARGETS.extend(
        expand(
            "results/final/{task}/{name}",
            task=oneshot_tasks(),
            name=["prediction.json", "model.pt", "evaluation.json"],
        )
    )
