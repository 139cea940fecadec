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
exec .venv/bin/pytest "$@"
