"""How much of each annotated lesion lies inside the search region, and how large it is.

For every annotated whole series of ``../shared/data`` (or the series given), the share of
the lesion's voxels inside: the threshold lung mask, the lung mask grown by 5 mm (the
search region before the lung field), the lung field (:mod:`pipeline.lungfield`) and the
field grown by 5 mm (the region the product path searches now); and each region's volume
relative to the lung mask::

    python -m benchmarks.lung_field [--data ../shared/data] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, series_dir, table
from pipeline.inference import GATE_MARGIN_MM
from pipeline.lungfield import lung_field
from pipeline.lungs import dilate, fast_lung_mask
from pipeline.series import load_series_dir


def annotated_series(data: Path) -> list[tuple[str, Path, Path]]:
    """Return ``(case, series path or archive, lesion mask)`` of the annotated whole series.

    Raises
    ------
    FileNotFoundError
        If ``data`` holds none of them.
    """
    lidc = data / "lidc-series"
    whole = data / "whole-series"
    cases = [
        ("LIDC-IDRI-0001", lidc / "LIDC-IDRI-0001",
         lidc / "reference-masks" / "LIDC-IDRI-0001_consensus50.nii.gz"),
        ("LIDC-IDRI-0002", lidc / "LIDC-IDRI-0002.tar.xz",
         lidc / "reference-masks" / "LIDC-IDRI-0002_consensus50.nii.gz"),
    ]
    for case in ("LIDC-IDRI-0314", "PYRADIOMICS-LUNG1", "PYRADIOMICS-LUNG2", "IBSI-PHANTOM"):
        cases.append((case, whole / f"{case}.tar.xz", whole / f"{case}_lesions.nii.gz"))
    found = [c for c in cases if c[1].exists() and c[2].exists()]
    if not found:
        raise FileNotFoundError(f"no annotated whole series under {data}")
    return found


def coverage(hu: np.ndarray, spacing: tuple[float, float, float], lesion: np.ndarray) -> dict:
    """Share of ``lesion`` inside each region and the regions' size against the lung mask."""
    lungs = fast_lung_mask(hu, spacing)
    start = time.perf_counter()
    field = lung_field(lungs, spacing)
    seconds = time.perf_counter() - start
    regions = {
        "lung": lungs,
        "lung+5mm": dilate(lungs, spacing, GATE_MARGIN_MM),
        "field": field,
        "field+5mm": dilate(field, spacing, GATE_MARGIN_MM),
    }
    total = max(int(lesion.sum()), 1)
    lung_voxels = max(int(lungs.sum()), 1)
    row: dict[str, object] = {}
    for name, region in regions.items():
        row[f"in {name}"] = round(float((lesion & region).sum()) / total, 3)
    for name in ("lung+5mm", "field", "field+5mm"):
        row[f"size {name}"] = round(float(regions[name].sum()) / lung_voxels, 2)
    row["field s"] = round(seconds, 2)
    return row


def main(argv: list[str] | None = None) -> None:
    """Print the coverage table (and write it as Markdown with ``--markdown``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    from trainer.data.datasets import read_reference_mask

    rows = []
    for case, source, mask_path in annotated_series(args.data):
        series = load_series_dir(series_dir(source))
        spacing = tuple(float(v) for v in series.spacing)
        lesion = read_reference_mask(mask_path, series.z_positions_mm, series.hu.shape)
        row = {"series": case, "slice mm": round(spacing[0], 2),
               "lesion cm3": round(float(lesion.sum() * np.prod(spacing)) / 1000, 1)}
        row.update(coverage(series.hu, spacing, lesion))
        rows.append(row)
        print(row, flush=True)
    text = table(rows, list(rows[0]))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
