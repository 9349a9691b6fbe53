# The README's two commands. Both set up what they need first (idempotent, fast when done).
SHELL := /bin/bash
VENV := .venv
# The workflow's shell commands call `python -m task2sim.cli...`: put the venv first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CORES ?= all
PYTEST_ARGS ?=
# pytest-xdist workers (tests/conftest.py: the heaviest tests start first, one tiny run is shared).
# --maxschedchunk 1 hands tests out one at a time: by default --dist load gives each worker a first
# block of about a quarter of its share, so the heavy tests sorted first all went to one worker.
TEST_WORKERS ?= 2

.PHONY: setup run test clean-results

setup:
	@bash tools/setup.sh

run: setup
	snakemake --cores $(CORES)

test: setup
	python -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 $(PYTEST_ARGS)

clean-results:
	rm -rf results logs benchmarks
