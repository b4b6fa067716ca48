#!/usr/bin/env bash
# Train the concat-decoder candidates of models/README.md's table (the 1.1.0 run) in parallel
# on one GPU machine, then pack the checkpoints and measure the smallest candidates with
# benchmarks/gpu_check.sh. DECODER=additive trains the same widths with the decoder of 1.2.0.
#
# Usage (repository root; needs PyTorch with CUDA, numpy, tqdm, yaml, matplotlib, and the
# patch cache of `trainer cache` in runs/cache/patches.npz):
#   benchmarks/gpu_train.sh [STEPS_VAE] [STEPS_FT] [PHASE_TIMEOUT_S]
#   DEVICE=cpu benchmarks/gpu_train.sh 3 3 60        # smoke test on a CPU
# Results go to $OUT (default runs/gpu_train): ckpt_unet.tar, ckpt_vae.tar (weights-only
# checkpoints, final.pt or the last saved step), train.log, gpu_check_*.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
STEPS_VAE="${1:-1500}"
STEPS_FT="${2:-6000}"
PHASE_TIMEOUT="${3:-300}"
OUT="${OUT:-runs/gpu_train}"
RUNS="$(mktemp -d)"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
DECODER="${DECODER:-concat}"
cfg=(--config trainer/configs/default.yaml --set device="$DEVICE" --set num_threads=2
     --set decoder="$DECODER")

job() {  # name, command, args...
  local name="$1"; shift
  ( timeout "$PHASE_TIMEOUT" "$@" > "$RUNS/$name.log" 2>&1; echo "$name exit $?" ) &
}

echo "phase 1: VAE pretraining ($STEPS_VAE steps) at $(date +%T)"
for b in 8 12 16; do
  PHASE_TIMEOUT=$((PHASE_TIMEOUT / 2)) job "vae_b$b" "$PY" -m trainer.cli pretrain-vae "${cfg[@]}" --set base_width=$b \
      --set steps="$STEPS_VAE" --set out_dir="$RUNS/vae_b$b"
done
wait

echo "phase 2: fine-tuning ($STEPS_FT steps) at $(date +%T)"
ft() {  # name, base width, init ("" = scratch), extra overrides...
  local name="$1" b="$2" init="$3"; shift 3
  local extra=(); for o in "$@"; do extra+=(--set "$o"); done
  job "$name" "$PY" -m trainer.cli finetune "${cfg[@]}" --set base_width="$b" --set steps="$STEPS_FT" \
      --set init="$init" --set out_dir="$RUNS/$name" "${extra[@]}"
}
ft b8_vae 8 "$RUNS/vae_b8/final.pt"
ft b12_vae 12 "$RUNS/vae_b12/final.pt"
ft b8_vae_sub3 8 "$RUNS/vae_b8/final.pt" subsolid_weight=3
ft b16_vae_sub3 16 "$RUNS/vae_b16/final.pt" subsolid_weight=3
ft b8_scratch 8 ""
wait
echo "training done at $(date +%T)"
cat "$RUNS"/*.log > "$OUT/train.log"

"$PY" - "$RUNS" "$OUT" <<'PYEOF'
import sys, tarfile
from pathlib import Path
import torch
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for kind, pattern in (("vae", "vae_*"), ("unet", "b*")):
    with tarfile.open(out / f"ckpt_{kind}.tar", "w") as tar:
        for run in sorted(p for p in runs.glob(pattern) if p.is_dir()):
            src = run / "final.pt" if (run / "final.pt").is_file() else run / "last.pt"
            if not src.is_file():
                print(f"{run.name}: no checkpoint")
                continue
            data = torch.load(src, map_location="cpu", weights_only=False)
            data["optimizer"] = None
            data.setdefault("extra", {})["packed_from"] = src.name
            torch.save(data, run / "packed.pt")
            tar.add(run / "packed.pt", arcname=f"{run.name}.pt")
            tar.add(run / "metrics.jsonl", arcname=f"{run.name}.metrics.jsonl")
            print(f"{run.name}: {src.name} step {data['step']}")
PYEOF

[ "$DEVICE" = cuda ] || exit 0
export_model() {  # checkpoint, target .onnx
  "$PY" -c "from trainer.export.exporter import export_checkpoint; import sys; \
export_checkpoint(sys.argv[1], sys.argv[2])" "$1" "$2" > /dev/null 2>&1
}
check() {  # name, model
  timeout 90 benchmarks/gpu_check.sh --model "$2" --series demo/LIDC-IDRI-0001 \
    --batches 256 --seconds 0.5 --budget 60 --json "$OUT/gpu_check_$1.json" \
    > "$OUT/gpu_check_$1.log" 2>&1
  tail -5 "$OUT/gpu_check_$1.log"
}
check shipped models/lungseg-unet.onnx
for name in b8_vae b12_vae; do
  export_model "$RUNS/$name/final.pt" "$RUNS/$name.onnx" && check "$name" "$RUNS/$name.onnx"
done
