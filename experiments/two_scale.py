"""Two scales: the shipped model for nodules plus a coarse-grid model for masses (not adopted).

The closest combination to issue 23's targets measured so far
(``docs/experiments/2026-12-02-coarse-grid-context.md``, third question): the shipped model
(0.78 mm grid) as the product runs it, joined with the components of a model fine-tuned on a
grid twice as coarse (1.56 mm, a 150 mm view; ``experiments/models/``) whose long axis is
``MASS_MM`` or more. On three held-out series it found every lesion at 4.0 false positives
per scan (the product's target is 2), so the product does not run it. This module lets a
site measure it on its own series::

    python -m experiments.two_scale --series DIR [--mask LESIONS.nii.gz] [--json OUT.json]

Research use only: not a medical device.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engines import create_engine
from engines.base import Engine
from pipeline.inference import segment_with_engine
from pipeline.lungs import fast_lung_mask
from pipeline.measure import measure_lesions
from pipeline.postprocess import label_lesions
from pipeline.series import load_series_dir

REPO = Path(__file__).resolve().parents[1]
FINE_MODEL = REPO / "models" / "lungseg-unet.onnx"
COARSE_MODEL = REPO / "experiments" / "models" / "lungseg-coarse-1.56mm.onnx"
MASS_MM = 30.0
"""Coarse components with a long axis of at least this many mm are kept (masses)."""


@dataclass
class Finding:
    """One component of the joined output."""

    scale: str
    volume_mm3: float
    long_axis_mm: float
    centroid_zyx: list[float]


def gated_labels(engine: Engine, hu: np.ndarray, spacing: tuple[float, float, float],
                 z_positions_mm: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Label a model's lesions as the product does: threshold, minimum volume, shape gate.

    Returns
    -------
    ndarray
        int32 ``(z, y, x)`` component labels (0 background).
    """
    pred = segment_with_engine(hu, spacing, z_positions_mm, engine, lungs=lungs)
    return label_lesions(pred, spacing, engine.spec.min_lesion_volume_mm3,
                         shape_limits=engine.spec.shape_limits)


def mass_components(labels: np.ndarray, hu: np.ndarray,
                    spacing: tuple[float, float, float]) -> np.ndarray:
    """Return the mask of the components whose long axis is ``MASS_MM`` or more."""
    keep = np.zeros(labels.shape, dtype=bool)
    for lesion in measure_lesions(labels, hu, spacing):
        if lesion.long_axis_mm >= MASS_MM:
            keep |= labels == lesion.label
    return keep


def join_scales(fine: np.ndarray, masses: np.ndarray, hu: np.ndarray,
                spacing: tuple[float, float, float]) -> tuple[np.ndarray, list[Finding]]:
    """Join the two outputs and describe each joined component.

    Parameters
    ----------
    fine, masses : ndarray
        Boolean masks: the fine model's lesions and the coarse model's masses.

    Returns
    -------
    tuple
        ``(joined mask, findings)``; a component is ``"mass"`` where it holds a coarse
        voxel, ``"nodule"`` otherwise.
    """
    joined = fine | masses
    labels = label_lesions(joined, spacing, 0.0)
    findings = [
        Finding("mass" if masses[labels == les.label].any() else "nodule",
                round(les.voxel_count * float(np.prod(spacing)), 1),
                round(les.long_axis_mm, 1), [round(float(v), 1) for v in les.centroid_zyx])
        for les in measure_lesions(labels, hu, spacing)
    ]
    return joined, findings


def run(series_dir: Path, mask: Path | None, threads: int) -> dict:
    """Segment one series with both scales; score it against ``mask`` when given.

    Raises
    ------
    ValueError, FileNotFoundError
        From loading the series, the models or the mask.
    """
    series = load_series_dir(series_dir)
    hu = series.hu.astype(np.float32)
    spacing, z = series.spacing, series.z_positions_mm
    lungs = fast_lung_mask(hu, spacing)
    with create_engine("onnx", FINE_MODEL, threads=threads, precision="fp32") as fine_engine:
        fine = gated_labels(fine_engine, hu, spacing, z, lungs) > 0
    with create_engine("onnx", COARSE_MODEL, threads=threads, precision="fp32") as coarse_engine:
        masses = mass_components(gated_labels(coarse_engine, hu, spacing, z, lungs), hu, spacing)
    joined, findings = join_scales(fine, masses, hu, spacing)
    report: dict = {"findings": [asdict(f) for f in findings]}
    if mask is not None:
        from trainer.data.datasets import read_reference_mask
        from trainer.evaluation.metrics import lesion_scores

        scores = lesion_scores(joined, read_reference_mask(mask, z, hu.shape) > 0)
        report["lesion_dice"] = [round(float(d), 3) for d in scores["lesion_dice"]]
        report["false_positives"] = int(scores["false_positives"])
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: print the findings (and scores) of one series."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=Path, required=True, help="folder of one CT series")
    parser.add_argument("--mask", type=Path, help="NIfTI lesion mask on the series' grid")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        report = run(args.series, args.mask, args.threads)
    except (ValueError, FileNotFoundError) as exc:
        print(f"two_scale: {exc}", file=sys.stderr)
        return 2
    for f in report["findings"]:
        print(f"{f['scale']:6s} {f['long_axis_mm']:6.1f} mm {f['volume_mm3']:10.1f} mm3 "
              f"at z,y,x {f['centroid_zyx']}")
    if "lesion_dice" in report:
        print(f"per-lesion Dice {report['lesion_dice']}, false positives "
              f"{report['false_positives']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
