#!/usr/bin/env bash
# One command from a fresh clone to the whole loop on built-in data:
#   set up ./.venv, then `genloop demo` (5,000 real MNIST digits; a few minutes on 2 CPU cores).
# Extra arguments go to `genloop demo` (e.g. `scripts/demo.sh --tiny`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/genloop demo "$@"
