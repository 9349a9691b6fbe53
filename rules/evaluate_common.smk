# Evaluate's input functions and configuration checks (rules/evaluate.smk includes this file;
# Snakemake's linter keeps functions out of files with rules).

_unknown = sorted(set(config["evaluate"]["sources"]) - set(all_bits()))
if _unknown:
    raise WorkflowError(
        f"invalid configuration: evaluate.sources: {_unknown[0]} is not one of this run's configurations"
    )


def evaluate_inputs(wildcards):
    """The task, plus the backbone unless training from scratch."""
    inputs = {"task": f"results/tasks/{wildcards.task}/data.h5"}
    if wildcards.method != "scratch":
        inputs["model"] = f"results/pretrain/{wildcards.source}/model.pt"
    return inputs


def evaluate_model_args(wildcards, input):
    """--model for pre-trained sources; the configured architecture and render size for scratch."""
    if wildcards.method == "scratch":
        return f"--model-name {config['pretrain']['model']}" f" --image-size {config['render']['image_size']}"
    return f"--model {input.model}"


def evaluate_config_json(wildcards):
    """The method's grid and epochs plus the validation fraction: the --config of evaluate."""
    ev = config["evaluate"]
    return json.dumps({**ev[wildcards.method], "val_fraction": ev["val_fraction"]}, sort_keys=True)


def evaluate_reward_json(wildcards):
    """linear: the reward section, whose amp is the probe's features' precision, as in the final
    stage's linear column; the other methods take none (a reward change reruns only linear jobs)."""
    return REWARD_JOB if wildcards.method == "linear" else "{}"


def evaluate_targets():
    """results/evaluate/{method}/{source}/{task}.json for the configured methods and sources."""
    ev = config["evaluate"]
    out = []
    for method in ev["methods"]:
        # scratch ignores the source's weights: one run per task, source "none"
        sources = ["none"] if method == "scratch" else ev["sources"]
        out += expand("results/evaluate/{method}/{source}/{task}.json", method=method, source=sources, task=task_ids())
    return out
