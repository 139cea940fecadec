#!/usr/bin/env bash
# One command from a fresh clone to the full test suite: set up (with test tools, Debian
# chromium for the browser test), lint, type-check, then every test (slow and browser included).
# Extra arguments go to pytest (e.g. `scripts/test.sh -k catalog`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
echo "[test] ruff check + format --check"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest"
# One worker per CPU (each on one torch thread, tests/conftest.py), a test file per worker at a
# time so its module fixtures are built once; on 2 cores the suite takes ~8 min instead of ~25.
# GENLOOP_TEST_WORKERS=0 runs in one process (e.g. with -x or pdb).
exec .venv/bin/pytest -n "${GENLOOP_TEST_WORKERS:-auto}" --maxprocesses 8 --dist loadfile "$@"
