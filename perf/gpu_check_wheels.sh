#!/usr/bin/env bash
# Download the wheels perf/gpu_check.py needs beyond a PyTorch + transformers image (trl,
# datasets, jsonschema and what they pull in that such images lack), for a GPU node without
# network access. The versions are the ones installed in this checkout's .venv.
#
#   bash perf/gpu_check_wheels.sh [DIR] [PYTHON_VERSION]      # defaults: .whl 3.12
#
# On the node (mixmerge itself runs from src/, no install needed):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl
#   PYTHONPATH=/tmp/site:src python3 perf/gpu_check.py --out /tmp/gpu-check
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PY=${2:-3.12}
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
pins=()
for pkg in trl datasets jsonschema referencing rpds-py jsonschema-specifications dill multiprocess; do
  pins+=("$pkg==$(version "$pkg")")
done
mkdir -p "$DIR"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DIR" "${pins[@]}"
ls -1 "$DIR"
