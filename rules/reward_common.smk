# Reward's input functions and configuration checks (rules/reward.smk includes this file;
# Snakemake's linter keeps functions out of files with rules); noise.smk and policy.smk read them too.


def reward_jsons(wildcards):
    """One reward JSON per (config, task) of this run."""
    return expand("results/rewards/{bits}/{task}.json", bits=all_bits(), task=reward_tasks())


def noise_configs():
    """The configurations repeated at the noise stage's seeds."""
    return config["noise"]["configs"]


# The reward section as a reward job reads it: reward.seeds only says which jobs run.
REWARD_JOB = config_json("reward", drop=["seeds"])
REWARD_SEEDS = config["reward"]["seeds"]
# noise.seeds that are not table seeds (a seed of both repeats every configuration)
NOISE_ONLY_SEEDS = [s for s in config["noise"]["seeds"] if s not in REWARD_SEEDS]


def noise_on():
    """The noise stage runs when some configurations are repeated: the noise stage's or the table's seeds."""
    return bool(noise_configs() and NOISE_ONLY_SEEDS) or bool(REWARD_SEEDS)


def noise_tsv(wildcards):
    return ["results/rewards/noise.tsv"] if noise_on() else []


def reward_seed_jsons(wildcards):
    """The table's other seeds (reward.seeds): every (seed, configuration, task)."""
    return expand(
        "results/noise/{seed}/rewards/{bits}/{task}.json", seed=REWARD_SEEDS, bits=all_bits(), task=reward_tasks()
    )


def noise_repeat_jsons(wildcards):
    """The repeated runs' reward JSONs: the table's other seeds and the noise stage's configurations."""
    return reward_seed_jsons(wildcards) + expand(
        "results/noise/{seed}/rewards/{bits}/{task}.json",
        seed=NOISE_ONLY_SEEDS,
        bits=noise_configs(),
        task=reward_tasks(),
    )


def noise_feature_caches(wildcards):
    return " ".join(
        expand(
            "results/noise/{seed}/features/{bits}/{task}.npz",
            seed=wildcards.seed,
            bits=wildcards.bits,
            task=reward_tasks(),
        )
    )


def reward_task_files(wildcards):
    """Every task's data.h5, in task_ids() order (parallel to the reward rule's outputs)."""
    return expand("results/tasks/{task}/data.h5", task=reward_tasks())


def reward_feature_caches(wildcards):
    """Per-task feature cache files of one backbone (results/features/{bits}/{task}.npz)."""
    return " ".join(expand("results/features/{bits}/{task}.npz", bits=wildcards.bits, task=reward_tasks()))


_unknown = sorted(set(noise_configs()) - set(all_bits()))
if _unknown:
    raise WorkflowError(f"invalid configuration: noise.configs: {_unknown[0]} is not one of this run's configurations")
for _key, _seeds in (("noise.seeds", config["noise"]["seeds"]), ("reward.seeds", REWARD_SEEDS)):
    if config["seed"] in _seeds:
        raise WorkflowError(f"invalid configuration: {_key}: {config['seed']} is the run's own seed")
