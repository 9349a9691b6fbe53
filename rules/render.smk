# Stage 2: synthetic pre-training data, one dataset per configuration string.
# Code: task2sim.render (spec sampler, assets, backends, dataset), CLI task2sim.cli.render.


rule render_dataset:
    output:
        images="results/renders/{bits}/images.h5",
        preview=report(
            "results/renders/{bits}/preview.png",
            category="Renders",
            caption="../docs/report/render_preview.rst",
            labels={"config": "{bits}", "figure": "preview"},
        ),
        meta="results/renders/{bits}/images.meta.json",
    log:
        "logs/renders/{bits}/images.log",
    benchmark:
        "benchmarks/renders/{bits}/images.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    # One core: the renderer keeps one busy (benchmarks/renders: CPU time = wall time); claiming
    # two left one idle and made the render wait for both cores to be free.
    threads: 1
    resources:
        config_runtime=runtime_json("render"),
        mem_mb=3000,
        runtime=20,
    params:
        # The render section but vary_bits (which picks datasets, not pixels): a changed size,
        # class count or backend rerenders.
        config=config_json("render", drop=["vary_bits"]),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.render dataset --bits {wildcards.bits} --config {params.config:q}"
        " --runtime {resources.config_runtime:q} --seed {params.seed} --out {output.images}"
        " --preview {output.preview} > {log} 2>&1"


rule render_variations:
    output:
        png=report(
            "results/renders/variations.png",
            category="Renders",
            caption="../docs/report/render_variations.rst",
            labels={"figure": "variations"},
        ),
        meta="results/renders/variations.meta.json",
    log:
        "logs/renders/variations.log",
    benchmark:
        "benchmarks/renders/variations.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        config_runtime=runtime_json("render"),
        mem_mb=2000,
        runtime=10,
    params:
        config=config_json("render", drop=["vary_bits"]),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.render variations --config {params.config:q}"
        " --runtime {resources.config_runtime:q} --seed {params.seed} --out {output.png} > {log} 2>&1"


FINAL_TARGETS.extend(expand("results/renders/{bits}/preview.png", bits=all_bits()))
FINAL_TARGETS.append("results/renders/variations.png")
