#!/usr/bin/env bash
# Set up from scratch: .venv (newest wandb) and .venv-legacy (wandb 0.10.31, where the hang is
# real). Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# NumPy: torch warns "Failed to initialize NumPy" on every import without it.
.venv/bin/pip install -q -c constraints.txt -e ".[test,wandb]" ruff numpy
[ -x .venv-legacy/bin/python ] || "$PY" -m venv .venv-legacy
.venv-legacy/bin/pip install -q -c constraints.txt -e ".[test]"
# A second step, without pip's conflict report: torch 2.13 declares setuptools>=77 (for
# torch.utils.cpp_extension, which nothing here uses) while wandb 0.10.31 needs pkg_resources
# from setuptools<70. wandb 0.10.31 also predates NumPy 2 (np.float_), so NumPy there is 1.x.
.venv-legacy/bin/pip install -q --no-warn-conflicts \
    "wandb==0.10.31" "protobuf<3.21" "setuptools<70" "numpy<2"
echo "bootstrap: .venv (wandb $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("wandb"))')), .venv-legacy (wandb 0.10.31) ready"
