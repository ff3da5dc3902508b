#!/usr/bin/env bash
# Create a separate virtual environment with the reference GEARS (cell-gears 0.1.2) for side-by-side
# benchmarks. Usage: bash benchmarks/reference/setup_env.sh [ENV_DIR]   (default /work/refenv)
#
# The reference is only installed into this environment: it is never vendored into scgears.
# torch is installed first and pinned, because cell-gears' unpinned `torch` would otherwise pull
# the newest CUDA build (gigabytes). The other pins are versions that were checked to run
# cell-gears 0.1.2 end to end on CPU (see README.md beside this script).
set -euo pipefail

ENV_DIR="${1:-/work/refenv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x "$ENV_DIR/bin/python" ]; then
    "$PYTHON" -m venv "$ENV_DIR"
fi
PIP=("$ENV_DIR/bin/python" -m pip install --quiet)

"${PIP[@]}" --upgrade pip
# 1. torch first, CPU build (a local wheel is found through pip's find-links when configured).
"${PIP[@]}" "torch==2.13.0"
# 2. the reference and its (unpinned upstream) dependencies, pinned to a working set.
"${PIP[@]}" \
    "cell-gears==0.1.2" \
    "torch==2.13.0" \
    "torch-geometric==2.8.1" \
    "numpy==2.4.6" \
    "pandas==2.3.3" \
    "scipy==1.17.1" \
    "scanpy==1.11.5" \
    "anndata==0.12.19" \
    "scikit-learn==1.9.1" \
    "networkx==3.6.1" \
    "dcor==0.7" \
    "tqdm" \
    "psutil"

# 3. smoke test: import the reference the way run_reference.py does.
"$ENV_DIR/bin/python" - <<'PY'
import importlib.metadata as md

import torch
import torch_geometric
from gears import GEARS, PertData  # noqa: F401

print(
    "reference env OK:",
    {name: md.version(name) for name in ("cell-gears", "torch", "torch-geometric", "numpy",
                                         "pandas", "scipy", "scanpy", "scikit-learn")},
)
PY
echo "python: $ENV_DIR/bin/python"
