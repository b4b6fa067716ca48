#!/usr/bin/env bash
# GPU check for lungseg (under 5 minutes, no network): torch CUDA engine fp32 vs fp16/bf16
# batch sweep, TensorRT if importable, compute- and memory-bound limits of the model on this
# GPU, and the end-to-end time for one whole series.
#
# Usage (from anywhere; runs in the repository root):
#   benchmarks/gpu_check.sh --series PATH [--model models/lungseg-unet.onnx] [--json FILE]
#   benchmarks/gpu_check.sh --cpu-dry-run --series demo/LIDC-IDRI-0001   # test it on a CPU
# PATH is a folder of DICOM files (searched recursively) or a .tar.xz of one, e.g. a copy of
# LIDC-IDRI-0002.tar.xz inside the repository tree. Results are printed and, when $OUT is set,
# written to $OUT/gpu_check.json.
#
# Needs python3 with PyTorch (CUDA) and numpy. Reading the series needs pydicom; the full
# pipeline stage also needs SimpleITK and highdicom: wheels placed in .whl/ (for example by
# `pip download` on a machine with network) are installed into a temporary folder first,
# without network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if compgen -G ".whl/*.whl" > /dev/null; then
  site="$(mktemp -d)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec timeout 300 "$PY" -m benchmarks.gpu_check "$@"
