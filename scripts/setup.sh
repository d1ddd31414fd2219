#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install medgan-core into it.
#
#   bash scripts/setup.sh            # the library, the demo data, the book tool chain and FRD (pyradiomics)
#   bash scripts/setup.sh --tests    # the same plus the test tool chain (pytest, nbval, pytorch-fid, Chromium)
#
# torch is installed first and pinned here (the library itself only asks for a range). torch 2.14.1 with
# torchvision 0.29.1 is the one pair whose torchvision imports on this machine kind (pytorch-fid needs it).
# Override with MEDGAN_TORCH="torch==X" (for example a CPU-only build) if your machine differs.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=0
for arg in "$@"; do
    case "$arg" in
        --tests) WITH_TESTS=1 ;;
        *) echo "setup.sh: unknown option $arg (use --tests)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
VENV="${MEDGAN_VENV:-.venv}"
TORCH_SPEC="${MEDGAN_TORCH:-torch==2.14.1 torchvision==0.29.1}"
STAMP="$VENV/.medgan-setup"
WANT="torch=[$TORCH_SPEC] frd=1 tests=$WITH_TESTS pyproject=$(sha256sum pyproject.toml | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if [ -f "$STAMP" ] && { [ "$(cat "$STAMP")" = "$WANT" ] || { [ "$WITH_TESTS" = 0 ] && grep -q "tests=1" "$STAMP" \
        && [ "$(sed 's/tests=1/tests=0/' "$STAMP")" = "$WANT" ]; }; }; then
    echo "[setup] $VENV is up to date"
else
    echo "[setup] installing $TORCH_SPEC"
    # shellcheck disable=SC2086
    "${PIP[@]}" install $TORCH_SPEC
    if [ "$WITH_TESTS" = 1 ]; then
        echo "[setup] installing medgan-core[test] (editable)"
        "${PIP[@]}" install -e ".[test]"
    else
        echo "[setup] installing medgan-core[book] (editable)"
        "${PIP[@]}" install -e ".[book]"
    fi
    # The FRD extra: the book's offline metric (chapters 2, 3 and 5) and its tests. pyradiomics' sdist builds
    # only without build isolation (its setup imports numpy, which the step above installed).
    echo "[setup] installing the FRD extra (pyradiomics 3.0.1, frd-score)"
    "${PIP[@]}" install --no-build-isolation pyradiomics==3.0.1
    "${PIP[@]}" install "frd-score>=1.0"
    echo "$WANT" > "$STAMP"
fi

if [ "$WITH_TESTS" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    # The visual Turing test and the rendered book are checked in a real headless browser.
    echo "[setup] installing Debian's chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "[setup] not root: install chromium yourself (apt-get install chromium) for the browser tests" >&2
    fi
fi
echo "[setup] done: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
