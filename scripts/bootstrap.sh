#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install coopmap into it.
#
# Torch policy (never lets pip pull a multi-GB CUDA build by accident):
#   * if the venv already has torch, keep it;
#   * else if the base interpreter has torch (e.g. a GPU user's CUDA build), the venv is created with
#     --system-site-packages so that install is reused;
#   * else install exactly torch==2.13.0 (on our CPU machines this pin resolves to a local CPU wheel).
# Set COOPMAP_TORCH_SPEC to install another torch spec instead (e.g. "torch==2.5.1" with PIP_INDEX_URL set).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${COOPMAP_VENV:-.venv}"
EXTRAS="${1:-}"   # "dev" for the test tools

if [ ! -x "$VENV/bin/python" ]; then
    if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
        echo "[bootstrap] base python has torch $("$PYTHON" -c 'import torch; print(torch.__version__)'); reusing it"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
fi
PY="$VENV/bin/python"
stamp="$VENV/.coopmap-installed-$EXTRAS"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    exit 0   # up to date
fi
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    spec="${COOPMAP_TORCH_SPEC:-torch==2.13.0}"
    echo "[bootstrap] installing $spec"
    "$PY" -m pip install -q "$spec"
fi
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
echo "[bootstrap] installing coopmap ($target) into $VENV"
"$PY" -m pip install -q -e "$target"
touch "$stamp"
