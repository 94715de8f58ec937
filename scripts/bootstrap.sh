#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv with pinned torch/torchvision.
# Idempotent: re-installs only when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.fetalscope-install
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/pip install --quiet -e ".[dev]"
  echo "$want" > "$stamp"
fi
