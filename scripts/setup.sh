#!/usr/bin/env bash
# Create .venv and install graphflow with its dev extra (idempotent; fast when already done).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.graphflow-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch 2.14.1 and torchvision 0.29.1 are on this machine's local index; elsewhere pip picks a fitting build.
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
