# ASG's configuration, outputs and input functions (rules/asg.smk includes this file; Snakemake's
# linter keeps functions out of files with rules).

ASG = config["asg"]
if [t for t in ASG["targets"] if t not in task_ids()]:
    raise WorkflowError(
        f"invalid configuration: asg.targets: {[t for t in ASG['targets'] if t not in task_ids()][0]!r}"
        " is not a task id in tasks.items"
    )

# Keys that pick jobs, not what a job computes: left out of the rerun-triggering params.
ASG_SCIENCE = config_json("asg", drop=["targets", "lambda_sweep", "seeds", "study", "setting_lrs", "setting_sources"])
ASG_STUDY = json.dumps({**json.loads(ASG_SCIENCE), **ASG["study"]}, sort_keys=True)
ASG_SWEEP_METHODS = ["proxy", "asg"]  # the methods that use kl_lambda
ASG_SWEEP_SEED = ASG["seeds"][0]


ASG_SOURCE = f"{ASG['source_style']}/{ASG['source_bits']}"
ASG_SETTING_METHODS = ["all_lr", "head_only"]


def asg_source():
    return ASG["source_h5"] or f"results/asg/source/{ASG_SOURCE}/images.h5"


def asg_render_config(wildcards):
    return json.dumps({**json.loads(ASG_SCIENCE), "source_style": wildcards.style}, sort_keys=True)


def asg_setting_config(wildcards):
    """The study's asg section at this learning rate, for methods (a) and (e)."""
    return json.dumps(
        {**json.loads(ASG_STUDY), "lr": float(wildcards.lr), "methods": ASG_SETTING_METHODS}, sort_keys=True
    )


def asg_setting_prefixes():
    """The configured source at every lr of asg.setting_lrs, the other sources at asg.lr."""
    out = [f"results/asg/setting/{ASG_SOURCE}/lr_{lr}" for lr in ASG["setting_lrs"]]
    return out + [f"results/asg/setting/{s}/lr_{ASG['lr']}" for s in ASG["setting_sources"] if s != ASG_SOURCE]


def asg_outputs(prefix, methods=None, for_report=False):
    """Per target under ``prefix``/<target>/: metrics.tsv, model.pt and model.meta.json of every
    method, the curves figure, and the learned-schedule figure when method asg runs."""
    methods = methods or ASG["methods"]
    targets = ASG["targets"]
    # plain string paths: ``prefix`` may hold a wildcard ({seed}, {lam}) that expand would fill
    out = {
        key: [f"{prefix}/{t}/{m}/{name}" for t in targets for m in methods]
        for key, name in (("metrics", "metrics.tsv"), ("models", "model.pt"), ("metas", "model.meta.json"))
    }
    figures = {"curves": "target accuracy per epoch"}
    if "asg" in methods:
        figures["schedule"] = "learned lr schedule"
    for name, label in figures.items():
        for t in targets:
            path = f"{prefix}/{t}/{name}.png"
            labels = {"figure": label, "target": t}
            # (a line must not start with `report(`: Snakemake would read it as a directive)
            flagged = report(path, category="ASG", caption="../docs/report/asg.rst", labels=labels)
            out[f"{name}_{t}"] = flagged if for_report else path
    return out


def asg_sweep_config(wildcards):
    """The study's asg section with this sweep point's kl_lambda, for the methods that use it."""
    return json.dumps(
        {**json.loads(ASG_STUDY), "kl_lambda": float(wildcards.lam), "methods": ASG_SWEEP_METHODS}, sort_keys=True
    )


def asg_out_root(wildcards, output):
    """<out-root> of asg finetune: three levels above <out-root>/<target>/<method>/metrics.tsv."""
    return str(Path(output.metrics[0]).parents[2])


def asg_summary_root(wildcards, output):
    """The folder the summary's run labels are relative to: the summary's own."""
    return str(Path(output.summary).parent)


def asg_policy_arg(wildcards, input):
    """--policy for the jobs whose methods read one (asg_setting's (a) and (e) do not)."""
    return f"--policy {input.policy}" if "policy" in input.keys() else ""


def asg_target_files(wildcards):
    return expand("results/tasks/{task}/data.h5", task=ASG["targets"])


def asg_metrics(prefixes, methods):
    return [f"{p}/{t}/{m}/metrics.tsv" for p in prefixes for t in ASG["targets"] for m in methods]
