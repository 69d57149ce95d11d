#!/usr/bin/env bash
# Retrain the demo bundle on wide-variation phantoms on a GPU machine, in one call (issue 21,
# item 4), and evaluate it on fresh wide phantoms and on the held-out generator.
#
# Run from the repository root on a machine with CUDA PyTorch; the project's other
# dependencies come as wheels in .whl/ (scripts/device_wheels.sh; carry [".whl"]), as for
# scripts/train_demo_bundle_gpu.sh, whose steps this follows. Everything lands in $OUT: the
# float16 bundle (weights split into parts of at most 15 MB: scripts/unpack_bundle.sh), the
# report, both evaluations and the logs, each step stamped with the seconds since the start.
# DEADLINE_S is the wall-clock limit of the whole run (8 minutes by default); each fit's time
# budget is what is left of it once the training cohort is made, less RESERVE_S for
# preprocessing, the post-fit ablations, packing and the evaluations.
# TRAIN_SEED/TRAIN_N name the training cohort (pancreas-node phantom --variation wide), with
# TUMOR_FREE of it tumor-free; FRESH_SEED/FRESH_N the fresh wide cohort and HOLDOUT_SEED/
# HOLDOUT_N the held-out generator's, both made on the CPUs while the model trains.
# CONFIG defaults to bundles/demo/train-config-wide.toml (augmentations on, tumor-free
# patients, warm start from bundles/demo's image branch). EVALUATE=0 leaves out the two
# evaluation cohorts (then run `pancreas-node evaluate` on the weights brought back).
# The evaluations score the network's cube (--no-pipeline); HOLDOUT_PIPELINE=1 also runs the
# analysis pipeline end to end on the held-out cohort (tumor found, false tumors, contact-angle
# MAE), which needs RESERVE_S raised to leave it the time.
set -euo pipefail
: "${OUT:?set OUT to the folder the results go to}"
WORK=${WORK:-/tmp/wide-train}
DEADLINE_S=${DEADLINE_S:-480}
RESERVE_S=${RESERVE_S:-150}
TRAIN_N=${TRAIN_N:-200}
TRAIN_SEED=${TRAIN_SEED:-61}
TUMOR_FREE=${TUMOR_FREE:-0.2}
FRESH_N=${FRESH_N:-40}
FRESH_SEED=${FRESH_SEED:-62}
HOLDOUT_N=${HOLDOUT_N:-20}
HOLDOUT_SEED=${HOLDOUT_SEED:-63}
HOLDOUT_PIPELINE=${HOLDOUT_PIPELINE:-0}
ABLATION_MAX_BYTES=${ABLATION_MAX_BYTES:-70000000}
CONFIG=${CONFIG:-bundles/demo/train-config-wide.toml}
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/steps.log"; }

if [ -z "${SKIP_WHEELS:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
CLI=(python3 -m pancreas_node)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, 'cuda', torch.cuda.is_available())"
stamp "wheels installed"
python3 -m training.device_check cuda >"$OUT/check-augment.log" 2>&1 &
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
    >"$OUT/gpu-load.csv" 2>/dev/null &
LOAD_PID=$!
trap 'kill $LOAD_PID 2>/dev/null || true' EXIT

rm -rf "$WORK" && mkdir -p "$WORK"
"${CLI[@]}" phantom --out "$WORK/cohort" --patients "$TRAIN_N" --seed "$TRAIN_SEED" \
    --variation wide --tumor-free-fraction "$TUMOR_FREE" --workers 16 >/dev/null
stamp "training cohort: $TRAIN_N wide phantoms (seed $TRAIN_SEED)"
if [ "${EVALUATE:-1}" != 0 ]; then
    (
        "${CLI[@]}" phantom --out "$WORK/fresh" --patients "$FRESH_N" --seed "$FRESH_SEED" \
            --variation wide --tumor-free-fraction "$TUMOR_FREE" --workers 8 >/dev/null
        "${CLI[@]}" phantom --out "$WORK/holdout" --patients "$HOLDOUT_N" --seed "$HOLDOUT_SEED" \
            --generator holdout --workers 8 >/dev/null
    ) &
    EVAL_COHORTS_PID=$!
fi

ELAPSED=$(($(date +%s) - T0))
BUDGET=$(python3 -c "print(round(max(1.0, ($DEADLINE_S - $ELAPSED - $RESERVE_S) / 60), 2))")
stamp "each fit gets $BUDGET min"
"${CLI[@]}" train --data "$WORK/cohort" --out "$WORK/bundle" --config "$CONFIG" \
    --time-budget-min "$BUDGET" 2>&1 | grep -v "━" | tee "$OUT/train.log" || true
stamp "trained"

# shellcheck source=scripts/_pack_bundle.sh
. "$(dirname "$0")/_pack_bundle.sh"
pack && stamp "bundle packed"
[ "${EVALUATE:-1}" != 0 ] || exit 0
wait "$EVAL_COHORTS_PID" || true
stamp "evaluation cohorts: $FRESH_N fresh wide (seed $FRESH_SEED), $HOLDOUT_N held-out (seed $HOLDOUT_SEED)"

evaluate() {  # cohort name, --pipeline or --no-pipeline, then the bundles
    local name=$1 pipeline=$2
    shift 2
    local bundles=()
    for bundle in "$@"; do bundles+=(--bundle "$bundle"); done
    "${CLI[@]}" evaluate "${bundles[@]}" --data "$WORK/$name" --out "$WORK/eval-$name" \
        "$pipeline" --device auto --workers 16 2>&1 | grep -v "━" | tee "$OUT/evaluate-$name.log" || true
    (cd "$WORK" && tar czf "$OUT/eval-$name.tar.gz" "eval-$name/evaluation.md" \
        "eval-$name/evaluation.json") || true
    stamp "evaluated on $name"
}
evaluate fresh --no-pipeline "$WORK/bundle" "$WORK/bundle/ablations/tabular_only"
if [ "$HOLDOUT_PIPELINE" = 1 ]; then
    evaluate holdout --pipeline "$WORK/bundle"
else
    evaluate holdout --no-pipeline "$WORK/bundle"
fi
stamp "done"
