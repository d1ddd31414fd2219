#!/usr/bin/env bash
# Make the book's recorded runs with the project's own `medgan train`, from a clean clone of one commit.
#
#   bash book/records/make_records.sh training [COMMIT]   # chapter 2: 32x32 MNI slices, 260 kimg, FRD + div128
#   bash book/records/make_records.sh ablation [COMMIT]   # chapter 3: 4 experiments x 3 seeds, 100 kimg (+ source, 200)
#
# COMMIT defaults to HEAD. The clone, data and full run folders live in $MEDGAN_RECORD_WORK (default
# /tmp/medgan-record-<name>); what the book keeps is copied to book/records/<name>/ (written as <name>.tmp, then
# renamed), with a README stating the command, commit, machine, threads and wall time. Never edit a record by hand.
# Settings: MEDGAN_PYTHON (default .venv/bin/python), MEDGAN_RECORD_THREADS (default 1), MEDGAN_RECORD_KIMG and,
# for the ablation, MEDGAN_RECORD_SEEDS (default "0 1 2"), MEDGAN_RECORD_JOBS (runs at a time, default 1; the
# transfer source takes one slot beside the runs without transfer) and MEDGAN_RECORD_SOURCE_KIMG (default 200);
# MEDGAN_RECORD_MINUTES stops the chapter-2 training by
# SIGINT after that many minutes (the trainer then writes a last snapshot and its metrics; the README says so).
# MEDGAN_RECORD_RESUME=1 continues an interrupted record of the same COMMIT in $MEDGAN_RECORD_WORK: every run is
# started with --auto-resume (a finished run is kept, not retrained; logs are appended), and the README's wall time
# adds the training time of earlier invocations (every attempt in the runs' stats.jsonl) to this invocation's.
set -euo pipefail
{  # bash reads a script as it runs: the braces make it parse the whole record first, so edits cannot reach it
NAME="${1:?usage: make_records.sh training|ablation [COMMIT]}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
COMMIT="$(git -C "$REPO" rev-parse "${2:-HEAD}")"
PY="${MEDGAN_PYTHON:-$REPO/.venv/bin/python}"
THREADS="${MEDGAN_RECORD_THREADS:-1}"
JOBS="${MEDGAN_RECORD_JOBS:-1}"
WORK="${MEDGAN_RECORD_WORK:-/tmp/medgan-record-$NAME}"
DEST="$REPO/book/records/$NAME"
SETTINGS="$(env | grep -E '^MEDGAN_RECORD_(KIMG|SOURCE_KIMG|SEEDS|THREADS|MINUTES|JOBS|RESUME)=' | sort | tr '\n' ' ' || true)"
RESUME="${MEDGAN_RECORD_RESUME:-0}"
COMMAND="${SETTINGS}bash book/records/make_records.sh $*"

if [ "$RESUME" = 1 ] && [ -d "$WORK/src" ]; then
    if [ "$(git -C "$WORK/src" rev-parse HEAD)" != "$COMMIT" ]; then
        echo "make_records.sh: $WORK holds a record of another commit; resume with that COMMIT or without MEDGAN_RECORD_RESUME" >&2
        exit 2
    fi
else
    rm -rf "$WORK"
    mkdir -p "$WORK"
    git clone -q "$REPO" "$WORK/src"
    git -C "$WORK/src" checkout -q "$COMMIT"
fi
rm -f "$WORK"/failed-*  # an interrupted invocation's markers: this one retries those runs
RESUME_OPTS=()
[ "$RESUME" = 1 ] && RESUME_OPTS=(--auto-resume)
cd "$WORK"  # `python -c` puts the current folder first on sys.path: never the working tree's package
export PYTHONUNBUFFERED=1 PYTHONPATH="$WORK/src" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" MPLBACKEND=Agg PYTHONHASHSEED=0
medgan() { "$PY" -c 'import sys; from medgan_core.cli import main; sys.argv[0] = "medgan"; main()' "$@"; }
zip_of() {  # zip_of SLICES RESOLUTION -> prints the training zip (the chapters' own helper)
    "$PY" -c 'import sys; from medgan_core.book.demo import training_set; print(training_set(sys.argv[1], sys.argv[2], int(sys.argv[3])))' \
        "$1" "$WORK/data" "$2"
}
train() {  # train RUN_DIR DATA OPTIONS...: one `medgan train` run (it writes its own log.txt; console in console.txt)
    local run_dir="$1" data="$2"
    shift 2
    mkdir -p "$run_dir"
    echo "[record] $(date -u +%H:%M:%S) medgan train --run-dir $run_dir $*"
    local status=0
    # `python -m medgan_core.train` is `medgan train`; unlike `python -c` it can restart itself with the tuned
    # allocator (2-3x faster on CPU, see benchmarks/README.md)
    "${TIMEOUT_PREFIX[@]}" "$PY" -m medgan_core.train --outdir "$(dirname "$run_dir")" --run-dir "$run_dir" \
        --data "$data" --device cpu --workers 0 --allocator tuned "${RESUME_OPTS[@]}" "$@" \
        >> "$run_dir/console.txt" 2>&1 || status=$?
    # 124: stopped by the time budget (SIGINT; the trainer wrote a last snapshot), anything else is a failure
    if [ "$status" != 0 ] && [ "$status" != 124 ]; then tail -20 "$run_dir/console.txt"; exit 1; fi
    if [ "$status" = 124 ]; then STOPPED_BY_BUDGET=1; fi
}

TIMEOUT_PREFIX=()
STOPPED_BY_BUDGET=0
START=$(date +%s)
# training time of the attempts of earlier invocations (resumed runs), counted before this one adds its own
EARLIER="$("$PY" -m medgan_core.book.records trained-seconds "$WORK"/runs/*/)"
medgan prep mni-brain --out "$WORK/data/mni-brain" --no-progress
COMMON=(--fp32 --map 2 --cbase 1024 --cmax 64)  # every run: a narrow StyleGAN2 in float32
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
case "$NAME" in
    training)
        KIMG="${MEDGAN_RECORD_KIMG:-260}"
        DATA="$(zip_of "$WORK/data/mni-brain" 32)"
        BUDGET=()
        [ -n "${MEDGAN_RECORD_MINUTES:-}" ] && BUDGET=(timeout --signal=INT --kill-after=20m "${MEDGAN_RECORD_MINUTES}m")
        TIMEOUT_PREFIX=("${BUDGET[@]}")
        # NVIDIA's automatic configuration for 32x32 at batch 16: gamma = 0.0002 * 32^2 / 16
        train "$WORK/runs/mni-32" "$DATA" "${COMMON[@]}" --batch 16 --gamma 0.0128 --beta1 0 \
            --metrics frd256,div128 --kimg "$KIMG" --tick 2 --snap 5 --aug ada --augpipe bg --ada-kimg 100 --mirror \
            --seed 0
        REACHED="$("$PY" -c 'import json, sys; print(round(json.loads(open(sys.argv[1]).read().splitlines()[-1])["Progress/kimg"]["mean"], 1))' "$WORK/runs/mni-32/stats.jsonl")"
        "$PY" -m medgan_core.book.records collect "$WORK/runs/mni-32" "$DEST.tmp/mni-32" --weights --work "$WORK"
        COLLAPSE="$("$PY" -m medgan_core.book.records collapse "$DEST.tmp/mni-32")"
        NOTE="Chapter 2's run: 32x32 axial MNI152 slices (nilearn), a narrow StyleGAN2 (channel base 1024, at most 64
channels, 2 mapping layers), ADA + x-flips, FRD (frd256) and the collapse metric (div128) at every snapshot (every
10 kimg, from kimg 0). Batch 16 and gamma 0.0128 as NVIDIA's automatic configuration picks them for 32x32, Adam
beta1 = 0 (NVIDIA's default, not the paper's 0.9); ADA's p may move by 1 in 100 kimg (at NVIDIA's 500, D wins on 123
slices before p catches up), with the geometric transforms only (--augpipe bg: the colour transforms' lumaflip
inverts grey slices, NVlabs/stylegan2-ada-pytorch issue 315). StyleGAN2 passes through an early mode collapse on
these slices; the collapse metric says where this run was: $COLLAPSE
Trained $REACHED of the $KIMG kimg asked for${MEDGAN_RECORD_MINUTES:+ within a time budget of $MEDGAN_RECORD_MINUTES
minutes}."
        if [ "$STOPPED_BY_BUDGET" = 1 ]; then
            NOTE="$NOTE The budget ran out: training was stopped by SIGINT, and the trainer wrote a last snapshot and
its metrics (see log.txt)."
        fi
        ;;
    ablation)
        KIMG="${MEDGAN_RECORD_KIMG:-100}"
        SEEDS="${MEDGAN_RECORD_SEEDS:-0 1 2}"
        DATA="$(zip_of "$WORK/data/mni-brain" 32)"
        # Every run: chapter 2's recipe at 32x32, the one seen to leave StyleGAN2's early collapse on these
        # slices (batch 16, NVIDIA's gamma for it, Adam beta1 0), with FRD and the collapse metric every 10 kimg.
        RECIPE=(--batch 16 --gamma 0.0128 --beta1 0 --tick 2 --snap 5)
        ADA=(--aug ada --augpipe bg --ada-kimg 100 --mirror)
        # Transfer source: FFHQ cannot be downloaded offline, so a run on another embedded modality stands in: the
        # synthetic liver CT phantom, a varied population (one seeded body per case), trained past its own
        # collapse; its networks are exported without training state.
        "$PY" -c 'import sys; from medgan_core.book.demo import write_ct_phantom as w; w(sys.argv[1])' "$WORK/data/phantom"
        KEY="$("$PY" -c 'import sys; from medgan_core.book.demo import phantom_key; print(phantom_key(sys.argv[1]))' "$WORK/data/phantom")"
        medgan prep liver-ct --src "$WORK/data/phantom" --out "$WORK/data/liver-ct" --key-file "$KEY" --no-progress
        SOURCE_DATA="$(zip_of "$WORK/data/liver-ct" 32)"
        SOURCE_KIMG="${MEDGAN_RECORD_SOURCE_KIMG:-200}"
        transfer_source() {  # trained past its own collapse, exported without training state, collected
            train "$WORK/runs/transfer-source" "$SOURCE_DATA" "${COMMON[@]}" "${RECIPE[@]}" "${ADA[@]}" \
                --kimg "$SOURCE_KIMG" --seed 0 --metrics div128
            "$PY" -c 'import sys; from medgan_core.book.demo import export_for_transfer as e; from medgan_core.book.records import final_snapshot as f; e(f(sys.argv[1]), sys.argv[2])' \
                "$WORK/runs/transfer-source" "$WORK/source-networks.safetensors"
            "$PY" -m medgan_core.book.records collect "$WORK/runs/transfer-source" "$DEST.tmp/transfer-source" \
                --final-grid-only --work "$WORK"
        }
        ( transfer_source ) || touch "$WORK/failed-transfer-source" &  # one job slot, beside the runs without it
        SOURCE_JOB=$!
        ablation_run() {  # ablation_run EXP SEED: one run of the ablation, trained and collected
            local exp="$1" seed="$2" opts
            case "$exp" in
                1) opts=(--aug noaug) ;;
                2) opts=(--aug noaug --resume "$WORK/source-networks.safetensors") ;;
                3) opts=("${ADA[@]}") ;;
                4) opts=("${ADA[@]}" --resume "$WORK/source-networks.safetensors") ;;
            esac
            local run="exp$exp-seed$seed"
            train "$WORK/runs/$run" "$DATA" "${COMMON[@]}" "${RECIPE[@]}" \
                --kimg "$KIMG" --seed "$seed" "${opts[@]}" --metrics frd64,div128
            "$PY" -m medgan_core.book.records collect "$WORK/runs/$run" "$DEST.tmp/$run" --final-grid-only --work "$WORK"
        }
        SOURCE_DONE=0
        for exp in 1 3 2 4; do  # the runs without transfer first, while the source trains
            for seed in $SEEDS; do  # MEDGAN_RECORD_JOBS runs at a time, each in its own process
                if [ "$exp" = 2 ] && [ "$SOURCE_DONE" = 0 ]; then
                    wait "$SOURCE_JOB" || true
                    SOURCE_DONE=1
                    [ -e "$WORK/failed-transfer-source" ] && break 2
                fi
                while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
                ( ablation_run "$exp" "$seed" ) || touch "$WORK/failed-exp$exp-seed$seed" &
            done
        done
        wait
        if compgen -G "$WORK/failed-*" > /dev/null; then
            echo "make_records.sh: failed: $(cd "$WORK" && ls failed-* | sed 's/failed-//' | tr '\n' ' ')" >&2
            exit 1
        fi
        COLLAPSE="$(for run in "$DEST.tmp"/exp3-seed*; do
            echo "$(basename "$run"): $("$PY" -m medgan_core.book.records collapse "$run")"; done)"
        NOTE="Chapter 3's ablation: 32x32 axial MNI152 slices, experiments 1-4 (baseline, transfer, ADA + x-flips,
both) x seeds $SEEDS, $KIMG kimg each, at chapter 2's recipe (batch 16, gamma 0.0128, Adam beta1 0 where the paper
set 0.9: with 0.9 the generator collapsed within a few kimg), FRD of 64 generated images (frd64) and the collapse
metric (div128) every 10 kimg. ADA with the geometric transforms only (bg) and p moving by up to 1 in 100 kimg
(the paper: NVIDIA's bgc, 1 in 500). Transfer source: the synthetic liver CT phantom population (FFHQ is not
available offline), $SOURCE_KIMG kimg with ADA; $("$PY" -m medgan_core.book.records collapse "$DEST.tmp/transfer-source") Where the augmented runs left the collapse:
$COLLAPSE"
        ;;
    *) echo "make_records.sh: unknown record $NAME (training or ablation)" >&2; exit 2 ;;
esac
SECONDS_SPENT=$(( $(date +%s) - START ))
if [ "$EARLIER" != 0 ]; then
    SECONDS_SPENT=$(( SECONDS_SPENT + EARLIER ))
    NOTE="$NOTE Resumed (MEDGAN_RECORD_RESUME=1): the wall time adds the training time of earlier invocations
($(( EARLIER / 60 )) min, from the runs' stats.jsonl) to this invocation's."
fi
"$PY" -m medgan_core.book.records readme "$DEST.tmp" --command "$COMMAND" --commit "$COMMIT" --threads "$THREADS" \
    --seconds "$SECONDS_SPENT" --note "$NOTE"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "[record] $NAME written to $DEST"
exit
}
