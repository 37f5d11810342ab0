#!/usr/bin/env bash
# Create .venv and install graphflow with its dev extra, plus Debian's Chromium for the editor's
# browser tests (idempotent; fast when already done).
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
if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1; then
  # The editor tests drive Debian's Chromium through Playwright; Playwright never downloads a browser.
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
