"""How much Dice a one-voxel boundary shift costs, per nodule size: a scale for crop Dice.

Each reference mask of the chosen crops is grown and shrunk by one voxel in-plane
(SimpleITK binary dilation / erosion, radius (1, 1, 0)) and scored against itself with the
same per-nodule Dice and size bins as ``trainer evaluate``. No model is involved.

Usage::

    python -m experiments.boundary_shift --vois ../shared/data/lidc-nodule-vois \\
        --patients runs/test_patients.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from trainer.data.datasets import read_crop
from trainer.evaluation.evaluate import SIZE_BINS, select_records
from trainer.evaluation.metrics import overlap_metrics


def shifted_dice(mask: np.ndarray) -> tuple[float, float]:
    """Dice of ``mask`` grown, and shrunk, by one in-plane voxel against ``mask`` itself."""
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(img, [1, 1, 0])) > 0
    shrunk = sitk.GetArrayFromImage(sitk.BinaryErode(img, [1, 1, 0])) > 0
    return overlap_metrics(grown, mask)["dice"], overlap_metrics(shrunk, mask)["dice"]


def table(vois: str, patients: list[str] | None) -> list[tuple[str, int, float, float, float]]:
    """Rows ``(size bin, n, mean Dice grown, mean Dice shrunk, mean in-plane spacing mm)``."""
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for _, _, name in SIZE_BINS}
    for rec in select_records(vois, patients):
        _, mask, spacing, _ = read_crop(rec)
        size = next(name for lo, hi, name in SIZE_BINS if lo <= rec.diameter_mm < hi)
        rows[size].append((*shifted_dice(mask > 0), float(spacing[1])))
    rows["all"] = [r for bin_rows in rows.values() for r in bin_rows]
    return [(k, len(v), *np.mean(v, axis=0).tolist()) for k, v in rows.items() if v]


def main() -> None:
    """Print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vois", required=True, help="crop folder (image/, nodule_mask/)")
    parser.add_argument("--patients", help="JSON list of patient IDs (default: all crops)")
    args = parser.parse_args()
    patients = json.loads(Path(args.patients).read_text()) if args.patients else None
    print("| nodule size | n | Dice, grown 1 voxel | Dice, shrunk 1 voxel | in-plane mm |")
    print("|---|---|---|---|---|")
    for size, n, grown, shrunk, mm in table(args.vois, patients):
        print(f"| {size} | {n} | {grown:.3f} | {shrunk:.3f} | {mm:.2f} |")


if __name__ == "__main__":
    main()
