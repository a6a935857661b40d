#!/usr/bin/env bash
# Install everything the tests need (scripts/setup.sh), lint, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
. .venv/bin/activate
ruff check bertkit tests benchmarks
python -m pytest -q "$@"
