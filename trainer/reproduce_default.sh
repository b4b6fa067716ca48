#!/usr/bin/env bash
# Train the default model's recipe end to end on this machine and score it, one stage after
# the other, printing how long each stage took:
#   cache (crops) -> cache (crops + lesion-free windows of a whole LIDC series) -> VAE
#   pretraining -> U-Net fine-tuning from the VAE encoder -> ONNX export -> shape gate ->
#   evaluation on the validation and test crops (and on a held-out whole series if given).
#
# Usage: trainer/reproduce_default.sh NEGATIVE_SERIES_DIR [HELD_OUT_SERIES_DIR HELD_OUT_MASK]
#   NEGATIVE_SERIES_DIR  a whole LIDC series folder with its reader XML (the shipped model
#                        used LIDC-IDRI-0001's)
#   HELD_OUT_*           optional: a whole series and its >= 2-reader mask to evaluate on
# Environment: OUT (default runs/reproduce), VAE_STEPS (1500), FT_STEPS (10000),
#   THREADS (2), VOIS (../shared/data/lidc-nodule-vois), VENV (.venv), MODEL_VERSION
#   (default reproduced-<UTC time>: the version enters output UIDs, so a retrained model
#   must not carry the shipped model's).
# Writes nothing outside OUT; the shipped files under models/ are not touched.
set -euo pipefail
cd "$(dirname "$0")/.."

NEG=${1:?usage: trainer/reproduce_default.sh NEGATIVE_SERIES_DIR [HELD_OUT_SERIES_DIR HELD_OUT_MASK]}
HELD_SERIES=${2:-}
HELD_MASK=${3:-}
OUT=${OUT:-runs/reproduce}
VAE_STEPS=${VAE_STEPS:-1500}
FT_STEPS=${FT_STEPS:-10000}
THREADS=${THREADS:-2}
VOIS=${VOIS:-../shared/data/lidc-nodule-vois}
VENV=${VENV:-.venv}
MODEL_VERSION=${MODEL_VERSION:-reproduced-$(date -u +%Y%m%dT%H%M%S)}
TRAINER="$VENV/bin/trainer"
CONFIG=trainer/configs/default.yaml
COMMON=(--config "$CONFIG" --set num_threads="$THREADS" --set vois_dir="$VOIS")

[[ -d "$NEG" ]] || { echo "reproduce: negative series folder not found: $NEG" >&2; exit 2; }
[[ -d "$VOIS/image" ]] || { echo "reproduce: crop folder not found: $VOIS/image" >&2; exit 2; }
if [[ -n "$HELD_SERIES" && ! -f "$HELD_MASK" ]]; then
    echo "reproduce: a held-out series needs its mask file: ${HELD_MASK:-<missing>}" >&2; exit 2
fi
mkdir -p "$OUT"
TIMES="$OUT/stage_seconds.tsv"
: > "$TIMES"

stage() {  # stage NAME COMMAND... : run it, log it, record its wall time
    local name=$1; shift
    local start=$SECONDS
    echo "== $name: $*"
    "$@" > "$OUT/$name.log" 2>&1 || { echo "reproduce: stage $name failed, see $OUT/$name.log" >&2; exit 1; }
    printf '%s\t%d\n' "$name" $((SECONDS - start)) | tee -a "$TIMES"
}

stage cache "$TRAINER" cache "${COMMON[@]}" --set cache="$OUT/patches.npz"
stage cache_negatives "$TRAINER" cache "${COMMON[@]}" --set negative_series="$NEG" \
    --set cache="$OUT/negatives.npz"
stage pretrain_vae "$TRAINER" pretrain-vae "${COMMON[@]}" --set cache="$OUT/patches.npz" \
    --set steps="$VAE_STEPS" --set out_dir="$OUT/vae"
stage finetune "$TRAINER" finetune "${COMMON[@]}" --set cache="$OUT/negatives.npz" \
    --set negative_series="$NEG" --set init="$OUT/vae/final.pt" --set steps="$FT_STEPS" \
    --set out_dir="$OUT/unet"
stage export "$TRAINER" export --checkpoint "$OUT/unet/final.pt" --out "$OUT/lungseg-unet.onnx" \
    --no-pt2 --model-version "$MODEL_VERSION"
stage shape_limits "$TRAINER" shape-limits --model "$OUT/lungseg-unet.onnx" --vois "$VOIS"

"$VENV/bin/python" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
split = json.loads((out / "lungseg-unet.json").read_text())["extra"]["training"]["split"]
for name in ("val", "test"):
    (out / f"{name}_patients.json").write_text(json.dumps(split[name]))
PY
for split in val test; do
    stage "evaluate_$split" "$TRAINER" evaluate --model "$OUT/lungseg-unet.onnx" --precision fp32 \
        --vois "$VOIS" --patients "$OUT/${split}_patients.json" --json "$OUT/crops_$split.json"
done
if [[ -n "$HELD_SERIES" ]]; then
    stage evaluate_series "$TRAINER" evaluate --model "$OUT/lungseg-unet.onnx" --precision fp32 \
        --series "$HELD_SERIES" --mask "$HELD_MASK" --json "$OUT/series.json"
fi

echo
echo "| stage | seconds |"
echo "|---|---|"
awk -F'\t' '{printf "| %s | %d |\n", $1, $2; total += $2} END {printf "| **total** | **%d** (%.1f min) |\n", total, total / 60}' "$TIMES"
"$VENV/bin/python" - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for name in ("crops_val", "crops_test", "series"):
    path = out / f"{name}.json"
    if path.exists():
        data = json.loads(path.read_text())
        keys = [k for k in ("n", "dice_mean", "precision", "recall", "n_detected_lesions",
                            "n_reference_lesions", "false_positives", "dice") if k in data]
        print(name, {k: data[k] for k in keys})
PY
