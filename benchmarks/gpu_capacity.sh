#!/usr/bin/env bash
# Capacity and seed-spread sweep of models/README.md ("Capacity, seeds, ensembles"): eight
# fine-tuning runs of the 1.2.0 recipe at once on one GPU, then their checkpoints packed.
#
# Usage (repository root; PyTorch with CUDA, numpy, tqdm, yaml, matplotlib; the patch cache of
# `trainer cache` in runs/cache/patches.npz and the base-16 VAE in $VAE):
#   benchmarks/gpu_capacity.sh [STEPS] [JOB_TIMEOUT_S]
#   DEVICE=cpu benchmarks/gpu_capacity.sh 4 120          # smoke test on a CPU
# Results: $OUT (default runs/gpu_capacity/packed): pack*.pt (benchmarks/pack_runs.py) and
# logs.tgz. Runs stopped by the timeout are packed from their last.pt (the step is recorded).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
STEPS="${1:-6000}"
JOB_S="${2:-420}"
VAE="${VAE:-runs/gpu/vae/final.pt}"
ROOT="${ROOT:-runs/gpu_capacity}"
OUT="${OUT:-$ROOT/packed}"
mkdir -p "$ROOT/logs" "$OUT"
cfg=(--config trainer/configs/default.yaml --set device="$DEVICE" --set num_threads=1
     --set eval_every=500 --set cache=runs/cache/patches.npz)

job() {  # name, overrides...
  local name="$1"; shift
  local extra=(); for o in "$@"; do extra+=(--set "$o"); done
  ( timeout "$JOB_S" "$PY" -m trainer.cli finetune "${cfg[@]}" --set out_dir="$ROOT/$name" \
      "${extra[@]}" > "$ROOT/logs/$name.log" 2>&1; echo "$name exit $? $(date +%T)" ) &
}

echo "start $(date +%T)"
job s16_0 steps="$STEPS" seed=0
job s16_1 steps="$STEPS" seed=1
job v16_0 steps="$STEPS" seed=0 init="$VAE"
job v16_1 steps="$STEPS" seed=1 init="$VAE"
job s24_0 steps="$STEPS" seed=0 base_width=24 max_width=192
job s32_0 steps="$STEPS" seed=0 base_width=32 max_width=256
job s32_1 steps="$STEPS" seed=1 base_width=32 max_width=256
job v16_0_long steps=$((STEPS * 2)) seed=0 init="$VAE"
wait
for d in "$ROOT"/*/; do
  [ -f "$d/metrics.jsonl" ] && echo "$(basename "$d") $(tail -1 "$d/metrics.jsonl" | cut -c1-160)"
done
"$PY" benchmarks/pack_runs.py pack "$ROOT" "$OUT"
tar czf "$OUT/logs.tgz" -C "$ROOT" logs $(cd "$ROOT" && ls -d */metrics.jsonl 2>/dev/null)
