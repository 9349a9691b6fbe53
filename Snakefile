# task2sim: task-adaptive synthetic pre-training as a workflow. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/tasks.smk"
include: "rules/render.smk"
include: "rules/pretrain.smk"
include: "rules/reward.smk"
include: "rules/evaluate.smk"
include: "rules/policy.smk"


rule all:
    input:
        FINAL_TARGETS,
    default_target: True
