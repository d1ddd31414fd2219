#!/usr/bin/env bash
# The GPU checks of the Triton ops and the trainer, prepared as one script for a CUDA machine: a lent device
# machine (each stage fits one 10-minute call) or your own GPU box. Results are printed and saved under $OUT
# (default: gpu-results/).
#
#   bash scripts/gpu_check.sh tests   # the GPU tests (-m gpu) and the Triton kernels against the reference on CUDA
#   bash scripts/gpu_check.sh ops     # benchmarks/bench_ops.py: fused vs reference per op, full G+D step at 512
#   bash scripts/gpu_check.sh train   # benchmarks/bench_train.py: sec/kimg at 256 and 512, fp32 and mixed precision
#
# Needs torch with CUDA, triton, and this package's dependencies importable by $PYTHON (default: python). The
# package itself is taken from this checkout (PYTHONPATH). A machine without internet can install the
# dependencies from wheels carried in wheels/ (`pip download -d wheels safetensors click tqdm pyyaml ...` on a
# machine with the same Python); they are installed with --no-index when that folder exists. The parity tests
# read ../shared/reference (or $MEDGAN_SHARED) and fail loudly without it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python}"
OUT="${OUT:-gpu-results}"
STAGE="${1:-}"
case "$STAGE" in
    tests | ops | train) ;;
    *) echo "usage: bash scripts/gpu_check.sh tests|ops|train" >&2; exit 2 ;;
esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d wheels ] && compgen -G "wheels/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps wheels/*.whl
fi
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: torch sees no CUDA device')"
mkdir -p "$OUT"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} | tee "$OUT/machine.txt"

case "$STAGE" in
    tests)
        timeout 540 "$PY" -m pytest -q -p no:cacheprovider tests/ops 2>&1 | tee "$OUT/tests_ops.txt"
        timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests -m gpu 2>&1 | tee "$OUT/tests_gpu.txt"
        ;;
    ops)
        timeout 560 "$PY" benchmarks/bench_ops.py --json "$OUT/bench_ops.json" 2>&1 | tee "$OUT/bench_ops.txt"
        ;;
    train)
        timeout 560 "$PY" benchmarks/bench_train.py --device cuda --res 256,512 --kimg 1 --batch 32 \
            --cbase 32768 --cmax 512 --map 8 2>&1 | tee "$OUT/bench_train.txt"
        ;;
esac
