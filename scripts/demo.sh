#!/usr/bin/env bash
# The main job: set up .venv, then build the demo book on CPU from the data embedded in PyPI packages
# (nilearn's MNI152 brain, pydicom's CT/MR/X-ray samples, a CT phantom with a liver mask).
# The rendered book lands in _build/html/index.html. Extra arguments go to `medgan book build`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg PYTHONHASHSEED=0
exec .venv/bin/medgan book build "$@"
