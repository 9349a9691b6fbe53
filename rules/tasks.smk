# Stage 1: downstream tasks -> results/tasks/{task}/data.h5 (+ preview.png, meta.json).
# Code: task2sim.tasks (sources, split/cap/resize, data.h5 layout), CLI task2sim.cli.tasks.


rule tasks_prepare:
    output:
        data="results/tasks/{task}/data.h5",
        preview=report(
            "results/tasks/{task}/preview.png",
            category="Tasks",
            caption="../docs/report/tasks_preview.rst",
            labels={"task": "{task}", "figure": "preview"},
        ),
        meta="results/tasks/{task}/data.meta.json",
    log:
        "logs/tasks/{task}/data.log",
    benchmark:
        "benchmarks/tasks/{task}/data.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        # The resolved settings: a changed cap, size or source reruns the task.
        config=task_settings_json,
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.tasks --task {wildcards.task:q} --config {params.config:q}"
        " --seed {params.seed} --out {output.data:q} --preview {output.preview:q} > {log:q} 2>&1"


FINAL_TARGETS.extend(expand("results/tasks/{task}/data.h5", task=task_ids()))
FINAL_TARGETS.extend(expand("results/tasks/{task}/preview.png", task=task_ids()))
