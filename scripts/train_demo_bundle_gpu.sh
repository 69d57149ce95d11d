#!/usr/bin/env bash
# Train the demo bundle on a GPU machine and evaluate it on a fresh phantom cohort.
#
# Run from the repository root on a machine with CUDA PyTorch; the project's other
# dependencies come as wheels in .whl/ (no registry is reachable there). Everything it
# produces lands in $OUT: the bundle (weights split into parts of at most 15 MB), the report,
# the fresh-cohort evaluation and the logs. DEADLINE_S is the wall-clock limit of the whole
# run; each fit's time budget is what is left of it after the data are made, less RESERVE_S
# for preprocessing, the post-fit ablations, packing and evaluation (on 2026-11-26, with 140 s,
# the fresh-cohort evaluation did not finish inside a 600 s call). Wheels: scripts/device_wheels.sh.
# TRAIN_SEED/TRAIN_N and FRESH_SEED/FRESH_N name the two phantom cohorts (the fresh one is made
# while the model trains); ablation weight files of ABLATION_MAX_BYTES or more stay behind.
# CONFIG defaults to the next run's protocol; bundles/demo/train-config-gpu.toml made the shipped
# image branch (its heads: bundles/demo/train-config.toml, on the CPU).
# EVALUATE=0 leaves out the fresh cohort and its evaluation (then run `pancreas-node evaluate`
# on the weights brought back); every bundle's weights come back in parts either way.
set -euo pipefail
: "${OUT:?set OUT to the folder the results go to}"
WORK=${WORK:-/tmp/demo-train}
DEADLINE_S=${DEADLINE_S:-560}
RESERVE_S=${RESERVE_S:-200}
TRAIN_N=${TRAIN_N:-159}
TRAIN_SEED=${TRAIN_SEED:-11}
FRESH_N=${FRESH_N:-60}
FRESH_SEED=${FRESH_SEED:-22}
# Ablation weight files larger than this stay behind (a CT-only model with its own 39 MB image
# branch would not come back with the bundle's within the 64 MiB per call).
ABLATION_MAX_BYTES=${ABLATION_MAX_BYTES:-70000000}
CONFIG=${CONFIG:-scripts/demo_bundle_next.toml}
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }

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
# The augmented-batch smoke check, on the GPU while the phantoms are made on the CPUs.
python3 -m training.device_check cuda >"$OUT/check-augment.log" 2>&1 &
# GPU load every 15 s, to tell a GPU-bound epoch from one waiting on the host.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
    >"$OUT/gpu-load.csv" 2>/dev/null &
LOAD_PID=$!
trap 'kill $LOAD_PID 2>/dev/null || true' EXIT

rm -rf "$WORK" && mkdir -p "$WORK"
"${CLI[@]}" phantom --out "$WORK/cohort" --patients "$TRAIN_N" --seed "$TRAIN_SEED" --workers 16 >/dev/null
stamp "training cohort: $TRAIN_N phantoms (seed $TRAIN_SEED)"
if [ "${EVALUATE:-1}" != 0 ]; then
    "${CLI[@]}" phantom --out "$WORK/fresh" --patients "$FRESH_N" --seed "$FRESH_SEED" --workers 16 >/dev/null &
    FRESH_PID=$!
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
wait "$FRESH_PID"
stamp "fresh cohort: $FRESH_N phantoms (seed $FRESH_SEED)"

"${CLI[@]}" evaluate --bundle "$WORK/bundle" --bundle "$WORK/bundle/ablations/ct_only" \
    --bundle "$WORK/bundle/ablations/tabular_only" --data "$WORK/fresh" --out "$WORK/eval" \
    --no-pipeline --device auto --workers 16 2>&1 | grep -v "━" | tee "$OUT/evaluate.log" || true
(cd "$WORK" && tar czf "$OUT/eval.tar.gz" eval/evaluation.md eval/evaluation.json) || true
stamp "evaluated; done"
