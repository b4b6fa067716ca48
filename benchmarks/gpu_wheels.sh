#!/usr/bin/env bash
# Download, on a machine with network, the wheels gpu_check.sh installs on a GPU machine
# without network (CPython 3.12, manylinux x86-64) into .whl/ (git-ignored):
#   pydicom (to read the series, 2.4 MB), and with --full also SimpleITK (~50 MB), highdicom,
#   pillow-jpls and pynetdicom for the full-pipeline stage.
# Mind the 64 MiB limit of what travels to the device: the tree (~33 MB) plus
# LIDC-IDRI-0002.tar.xz (52 MB) already exceeds it; see docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
names=(pydicom==3.0.2)
if [ "${1:-}" = "--full" ]; then
  names+=(SimpleITK==2.5.7 highdicom==0.28.2 pillow-jpls==1.3.2 pynetdicom==3.0.4)
fi
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${names[@]}"
