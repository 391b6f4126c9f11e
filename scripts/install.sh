#!/usr/bin/env bash
# Create .venv and install mixmerge with its pinned dependencies (idempotent).
# TORCH_SPEC picks the torch build: the default is the CPU wheel this project tests with; on a
# GPU machine set e.g. TORCH_SPEC="torch==2.9.1" (PyPI's Linux wheels are CUDA builds).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
# bubblewrap: the boundary around the code HumanEval+ / MBPP+ run (evaluate.sandbox). Installed
# only as root, with apt-get, where bwrap is missing; elsewhere util-linux unshare stands in.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } \
    >/dev/null 2>&1 || echo "warning: could not install bubblewrap (util-linux unshare is used)" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# torch first: the project's torch range then installs nothing more (no CUDA build pulled in).
.venv/bin/python -m pip install -q "$TORCH_SPEC" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e ".[dev,slurm]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import mixmerge, torch, trl, lm_eval, evalplus, snakemake; print('mixmerge installed; torch', torch.__version__)"
