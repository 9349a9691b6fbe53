# task2sim: task-adaptive synthetic pre-training as a workflow. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/tasks.smk"
include: "rules/render.smk"
include: "rules/pretrain.smk"
include: "rules/reward.smk"
include: "rules/noise.smk"
include: "rules/evaluate.smk"
include: "rules/task2vec.smk"
include: "rules/asg.smk"
include: "rules/policy.smk"
# after policy.smk: the final comparison reads the policy's predictions
include: "rules/final.smk"


rule all:
    default_target: True
    input:
        FINAL_TARGETS,
