"""Make the int8 ONNX model, calibrated on real CT, and report its accuracy delta.

Run from the repository root::

    .venv/bin/python -m benchmarks.quantize --model models/lungseg-unet.onnx \\
        --calibration demo/LIDC-IDRI-0001 --check ../shared/data/lidc-series/LIDC-IDRI-0001

writes ``<model>-int8.onnx`` + sidecar next to the model (or ``--out``), then segments the
``--check`` series with both models (``pipeline.inference.segment_with_engine``) and prints the
Dice of the int8 lesion mask against the fp32 one and both run times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import series_dir
from benchmarks.engines import lung_geometry, real_batch


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.quantize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--calibration", required=True, help="series folder or .tar.xz")
    p.add_argument("--slices", type=int, default=32, help="calibration slices")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep-head-fp32", action="store_true")
    p.add_argument("--check", default=None, help="series to compare fp32 and int8 masks on")
    return p


def main(argv: list[str] | None = None) -> int:
    """Quantise, then optionally compare on a whole series."""
    from engines.quantize import quantize_int8
    from engines.spec import read_spec
    from pipeline.series import load_series_dir

    args = build_parser().parse_args(argv)
    spec = read_spec(args.model)
    series = load_series_dir(series_dir(args.calibration))
    slices, box = lung_geometry(series)
    batch = real_batch(series, spec, slices, box, count=args.slices)
    chunks = [batch[i:i + 8] for i in range(0, len(batch), 8)]
    out = quantize_int8(args.model, chunks, args.out, keep_head_fp32=args.keep_head_fp32)
    print(f"int8 model: {out} (calibrated on {len(batch)} slices)")
    if args.check:
        compare(args.model, out, args.check)
    return 0


def compare(fp32_model: Path, int8_model: Path, series_path: str) -> None:
    """Print Dice and times of the int8 vs the fp32 lesion mask on one series."""
    from engines import create_engine
    from engines.quantize import dice
    from pipeline.inference import segment_with_engine
    from pipeline.series import load_series_dir

    series = load_series_dir(series_dir(series_path))
    masks = []
    for model, precision in ((fp32_model, "fp32"), (int8_model, "int8")):
        with create_engine("onnx", model, precision=precision) as engine:
            start = time.perf_counter()
            masks.append(segment_with_engine(series.hu, series.spacing, series.z_positions_mm,
                                             engine))
            print(f"{model.name}: {time.perf_counter() - start:.1f} s, "
                  f"{int(masks[-1].sum())} lesion voxels")
    print(f"Dice int8 vs fp32: {dice(*masks):.4f}")


if __name__ == "__main__":
    sys.exit(main())
