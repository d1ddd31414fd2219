#!/usr/bin/env bash
# The test command: set up .venv with the test tool chain, then run the unit tests and validate every chapter
# notebook with nbval (executed with smoke-sized papermill parameters). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
export MPLBACKEND=Agg PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
