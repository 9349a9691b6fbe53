# Task2Vec's input functions (rules/task2vec.smk includes this file;
# Snakemake's linter keeps functions out of files with rules).


def task2vec_probe_inputs(wildcards):
    """A configured local probe checkpoint is an input (the packaged EfficientNet-Lite0 weights
    live in the environment; the provenance record hashes them either way)."""
    ckpt = config["task2vec"]["checkpoint"]
    return [ckpt] if ckpt else []
