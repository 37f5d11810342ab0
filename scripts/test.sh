#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-browser
# One test process per core (at most 4), a test file per process at a time: the tests run torch on
# one thread each (tests/conftest.py), and a file's module-scoped fixtures are built once.
exec .venv/bin/python -m pytest -q -n "${GRAPHFLOW_TEST_PROCESSES:-auto}" --maxprocesses=4 --dist loadfile "$@"
