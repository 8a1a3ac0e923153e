#!/usr/bin/env bash
# Set up from scratch: .venv (newest wandb) and .venv-legacy (wandb 0.10.31, where the hang is
# real). Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q -c constraints.txt -e ".[test,wandb]" ruff
[ -x .venv-legacy/bin/python ] || "$PY" -m venv .venv-legacy
# Two steps: torch 2.13 declares setuptools>=77, wandb 0.10.31 needs setuptools<70 for
# pkg_resources; pip's warning about it is harmless here. wandb 0.10.31 also predates NumPy 2
# (np.float_), so a NumPy there must be 1.x.
.venv-legacy/bin/pip install -q -c constraints.txt -e ".[test]"
.venv-legacy/bin/pip install -q "wandb==0.10.31" "protobuf<3.21" "setuptools<70" "numpy<2"
