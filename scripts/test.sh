#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-browser
# Bytecode for graphflow's own modules, written once here: every test process, and the CLI, server
# and Ray worker processes the tests start, would otherwise compile the ~130k lines of graphflow and
# nodes again (about a second each) where the environment sets PYTHONDONTWRITEBYTECODE.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/python -m compileall -q -j 0 graphflow nodes > /dev/null
# One test process per core (at most 4), a test file per process at a time: the tests run torch on
# one thread each (tests/conftest.py), and a file's module-scoped fixtures are built once.
exec .venv/bin/python -m pytest -q -n "${GRAPHFLOW_TEST_PROCESSES:-auto}" --maxprocesses=4 --dist loadfile "$@"
