#!/usr/bin/env bash
# The one prepared GPU check (README, "Scale and clusters"): the tiny complete workflow with
# device: cuda (every torch stage, mixed precision), then the paper profile's render and ResNet-50
# pre-training on a few hundred 224 px images, timed. One line per check; under 8 minutes on one
# GPU. Without CUDA it prints one skip line and exits 0. Arguments go to
# `python -m task2sim.bench.gpu_check` (--help lists them; --json FILE keeps every figure).
#
# Python: $PYTHON, else .venv/bin/python, else python3 (an environment with the project's stack;
# the checkout's src/ is put on PYTHONPATH, so the package need not be installed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PYTHON" -m task2sim.bench.gpu_check --repo "$PWD" "$@"
