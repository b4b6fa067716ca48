"""Held-out nodules in a real lung: does the model find them as well as in an air canvas?

Crop Dice is measured with every crop set in air, as in training; a whole series has lung
around each nodule instead. With two annotated whole series here (one nodule each), this
benchmark gives that question more than two answers: each nodule crop of the chosen patients
is resampled to a host series' grid and blended into its lung, at a random lesion-free
place, and the model is run twice on the same inserted nodule:

- **context**: the host's whole slices from :data:`MARGIN_Z_MM` above the crop to as far
  below it, through the product path
  (:func:`pipeline.inference.segment_with_engine`: lung gate, threshold, then
  :func:`pipeline.postprocess.label_lesions` with the sidecar's minimum volume and shape
  gate); *found* when a kept component touches the nodule;
- **air**: the blended crop alone (its own slices and in-plane extent) in an air canvas
  (:func:`trainer.evaluation.evaluate.embed_in_air`, the crop protocol), the same post-processing.

Dice is the per-nodule 3D Dice on the host grid. The host must be an LIDC series with its
reader XML: places within 30 mm of any reader's mark are not used
(:func:`trainer.data.negatives.read_negative_series`), and a nodule is centred on aerated lung
(at most -500 HU) with at least 90 % of its blended region inside the lung mask.

The blend is the one ``crop_canvas=air+lung`` trains with
(:func:`trainer.data.patches.lesion_weight`: the crop is kept whole within 2.3 mm of the
nodule's footprint and fades into the host over the next 4.7 mm); the crop also fades in
from its own border over 4.7 mm, so a nodule near the crop's border loses part of its
margin rather than bringing an edge along.
Nodules cut by the crop's border are skipped. It is a synthetic check: the crop's own lung
comes with it, and scanner, dose and reconstruction kernel may differ between crop and
host. It measures the effect of the surroundings, not a sensitivity on real series.

Usage::

    python -m benchmarks.nodules_in_context --model models/lungseg-unet.onnx \\
        --vois ../shared/data/lidc-nodule-vois --patients runs/test_patients.json \\
        --host <LIDC-IDRI-0002 series folder> --json runs/context.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.config import TrainConfig
from trainer.data.datasets import CropRecord, read_crop
from trainer.data.patches import (
    PARENCHYMA_MAX_HU,
    PASTE_FEATHER_PX,
    PASTE_GROW_PX,
    lesion_weight,
)
from trainer.evaluation.evaluate import SIZE_BINS, embed_in_air, select_records
from trainer.evaluation.metrics import overlap_metrics

KEEP_MM = PASTE_GROW_PX * TrainConfig.pixel_spacing_mm
FADE_MM = PASTE_FEATHER_PX * TrainConfig.pixel_spacing_mm
"""The training blend's distances in mm: the crop is kept whole within ``KEEP_MM`` of the
nodule and fades out over 2 x ``FADE_MM``."""
MIN_LUNG_SHARE = 0.9
"""Smallest share of the blended region (weight >= 0.5) that must lie in the lung mask."""
AIR_HU = -1000.0
"""What the air canvas is filled with, as in training."""
MARGIN_Z_MM = 5.0
"""Host slices above and below the crop in the context arm (for the 2.5D channels)."""


@dataclass
class Host:
    """A whole series to insert nodules into.

    Attributes
    ----------
    hu : ndarray
        ``(z, y, x)`` float32 HU.
    spacing : tuple of float
        ``(z, y, x)`` mm.
    z_positions : ndarray
        ``(z,)`` slice positions (mm).
    lungs : ndarray
        Boolean lung mask (:func:`pipeline.lungs.fast_lung_mask`).
    centres : ndarray
        ``(n, 3)`` voxels where a nodule may be centred (every 7th allowed one).
    patient : str
        The series' Patient ID (its own crops are not inserted; never printed).
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    z_positions: np.ndarray
    lungs: np.ndarray
    centres: np.ndarray
    patient: str


def load_host(folder: str | Path) -> Host:
    """Load an LIDC series and where nodules may be centred in it.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`trainer.data.negatives.read_negative_series`.
    """
    from pipeline.lungs import fast_lung_mask
    from pipeline.series import load_series_dir
    from trainer.data.lidc import read_all_marks
    from trainer.data.negatives import negative_centres, reader_xml

    xml = reader_xml(folder)
    series = load_series_dir(folder)
    lungs = fast_lung_mask(series.hu, series.spacing)
    centres = negative_centres(series, read_all_marks(xml), lungs)
    hu = series.hu.astype(np.float32)
    allowed = np.argwhere(centres & lungs & (hu <= PARENCHYMA_MAX_HU))[::7]
    return Host(hu, tuple(series.spacing), np.asarray(series.z_positions_mm), lungs, allowed,
                str(series.datasets[0].get("PatientID", "")))


def resample_to(hu: np.ndarray, mask: np.ndarray, spacing: tuple, target: tuple
                ) -> tuple[np.ndarray, np.ndarray]:
    """Resample a crop and its mask (linear, mask at 0.5) to the ``target`` spacing.

    Parameters
    ----------
    hu, mask : ndarray
        ``(z, y, x)`` crop and boolean mask.
    spacing, target : tuple of float
        ``(z, y, x)`` spacing of the crop and of the result, mm.

    Returns
    -------
    tuple of ndarray
        Float32 HU and boolean mask on the target grid (same physical extent, rounded).
    """
    import SimpleITK as sitk

    size = [max(1, int(round(n * s / t)))
            for n, s, t in zip(hu.shape[::-1], spacing[::-1], target[::-1], strict=True)]

    def resample(arr: np.ndarray, default: float) -> np.ndarray:
        img = sitk.GetImageFromArray(arr.astype(np.float32))
        img.SetSpacing([float(s) for s in spacing[::-1]])
        out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, (0.0, 0.0, 0.0),
                            [float(t) for t in target[::-1]], img.GetDirection(), default)
        return sitk.GetArrayFromImage(out)

    return resample(hu, AIR_HU), resample(mask, 0.0) >= 0.5


def blend_weight(mask: np.ndarray, spacing: tuple) -> np.ndarray:
    """Return the ``(y, x)`` weight of the crop over the host: 1 at the nodule, 0 far out,
    and rising from 0 at the crop's own border, so that no border of the crop shows."""
    keep = max(1, int(round(KEEP_MM / spacing[1])))
    fade = max(1, int(round(FADE_MM / spacing[1])))
    h, w = mask.shape[1:]
    edge = np.minimum.outer(np.minimum(np.arange(h), np.arange(h)[::-1]),
                            np.minimum(np.arange(w), np.arange(w)[::-1]))
    taper = np.clip(edge / (2 * fade), 0.0, 1.0)
    return np.minimum(lesion_weight(mask.any(axis=0), keep, fade), taper).astype(np.float32)


def choose_corner(host: Host, weight: np.ndarray, n_slices: int, rng: np.random.Generator,
                  tries: int = 200) -> tuple[int, int, int] | None:
    """Pick where the crop's first voxel goes: its centre on an allowed voxel, its blended
    region (weight >= 0.5) at least :data:`MIN_LUNG_SHARE` in the lung, all inside the volume.

    Returns
    -------
    tuple of int or None
        ``(z, y, x)`` corner, or None when ``tries`` draws found no such place.
    """
    shape = np.array(host.hu.shape)
    size = np.array((n_slices, *weight.shape))
    half = size // 2
    candidates = host.centres
    inside = np.all((candidates - half >= 0) & (candidates - half + size <= shape), axis=1)
    candidates = candidates[inside]
    region = weight >= 0.5
    for _ in range(min(tries, len(candidates))):
        z, y, x = candidates[rng.integers(len(candidates))] - half
        lungs = host.lungs[z : z + size[0], y : y + size[1], x : x + size[2]]
        if (lungs & region).sum() >= MIN_LUNG_SHARE * region.sum() * size[0]:
            return int(z), int(y), int(x)
    return None


def insert(host: Host, hu: np.ndarray, mask: np.ndarray, weight: np.ndarray,
           corner: tuple[int, int, int], margin_slices: int) -> dict:
    """Blend a resampled crop into a copy of the host's slices around ``corner``.

    Returns
    -------
    dict
        ``hu`` (the box), ``ref`` (the nodule in the box), ``lungs``, ``z`` (slice positions),
        ``inner`` (where the crop sits in the box).
    """
    z0, y0, x0 = corner
    box = (slice(max(z0 - margin_slices, 0),
                 min(z0 + hu.shape[0] + margin_slices, host.hu.shape[0])),
           slice(0, host.hu.shape[1]), slice(0, host.hu.shape[2]))
    out = host.hu[box].copy()
    inner = tuple(slice(c - b.start, c - b.start + n)
                  for c, b, n in zip(corner, box, hu.shape, strict=True))
    out[inner] = weight * hu + (1.0 - weight) * out[inner]
    ref = np.zeros(out.shape, dtype=bool)
    ref[inner] = mask
    return {"hu": out, "ref": ref, "lungs": host.lungs[box], "z": host.z_positions[box[0]],
            "inner": inner}


def _on_nodule(pred: np.ndarray, ref: np.ndarray, spacing: tuple, spec) -> tuple[np.ndarray, int]:
    """Post-process ``pred`` as the pipeline does; return the kept components touching
    ``ref`` as one mask, and how many kept components miss it."""
    from pipeline.postprocess import label_lesions

    labels = label_lesions(pred, spacing, spec.min_lesion_volume_mm3,
                           shape_limits=spec.shape_limits or None)
    hits = np.setdiff1d(np.unique(labels[ref]), [0])
    return np.isin(labels, hits), int(labels.max()) - hits.size


def score_nodule(engine, box: dict, spacing: tuple) -> dict:
    """Segment the inserted nodule in its lung and in air; Dice, found and peak probability.

    The product path keeps only thresholded masks, so the peak in the lung comes from a
    second, ungated pass over the same slices (as ``trainer evaluate --series`` does for
    its voxel AUC).
    """
    from pipeline.inference import segment_with_engine
    from trainer.evaluation.evaluate import model_probabilities

    spec = engine.spec
    ref = box["ref"]
    context, others = _on_nodule(segment_with_engine(box["hu"], spacing, box["z"], engine,
                                                     lungs=box["lungs"]), ref, spacing, spec)
    prob = model_probabilities(engine, box["hu"], spacing, box["z"])
    crop = box["inner"]
    padded, inner = embed_in_air(box["hu"][crop], spacing, AIR_HU)
    air_prob = model_probabilities(engine, padded, spacing, box["z"][crop[0]])[inner]
    air = np.zeros(ref.shape, dtype=bool)
    air[crop] = _on_nodule(air_prob > spec.threshold, ref[crop], spacing, spec)[0]
    return {
        "found_context": bool((context & ref).any()),
        "dice_context": overlap_metrics(context, ref)["dice"],
        "peak_context": float(prob[ref].max()),
        "other_components_context": others,
        "found_air": bool((air & ref).any()),
        "dice_air": overlap_metrics(air, ref)["dice"],
        "peak_air": float(air_prob[ref[crop]].max()),
    }


def skip_reason(mask: np.ndarray) -> str | None:
    """Why a resampled crop cannot be inserted, or None."""
    if not mask.any():
        return "empty mask at the host's spacing"
    footprint = mask.any(axis=0)
    if np.concatenate([footprint[0], footprint[-1], footprint[:, 0], footprint[:, -1]]).any():
        return "nodule cut by the crop's border"
    return None


def run(engine, host: Host, records: list[CropRecord], seed: int = 0) -> list[dict]:
    """Insert and score the crops of ``records`` not of the host's patient; a crop that
    cannot be placed is reported."""
    records = [r for r in records if r.patient != host.patient]
    rng = np.random.default_rng(seed)
    margin_slices = int(np.ceil(MARGIN_Z_MM / host.spacing[0]))
    rows = []
    for rec in records:
        hu, mask, spacing, _ = read_crop(rec)
        hu, mask = resample_to(hu, mask, spacing, host.spacing)
        row = {"name": rec.name, "texture": rec.texture, "diameter_mm": rec.diameter_mm}
        weight = blend_weight(mask, host.spacing)
        reason = skip_reason(mask)
        corner = None if reason else choose_corner(host, weight, hu.shape[0], rng)
        if corner is None:
            rows.append({**row, "skipped": reason or "no lesion-free lung place fits it"})
            continue
        box = insert(host, hu, mask, weight, corner, margin_slices)
        rows.append({**row, "corner": list(corner), **score_nodule(engine, box, host.spacing)})
    return rows


def summary_rows(rows: list[dict]) -> list[dict]:
    """Table rows: all, by texture and by size; found shares and mean Dice in air and lung."""
    scored = [r for r in rows if "skipped" not in r]
    groups = [("all", scored)]
    groups += [(t, [r for r in scored if r["texture"] == t])
               for t in sorted({r["texture"] for r in scored})]
    groups += [(name, [r for r in scored if lo <= r["diameter_mm"] < hi])
               for lo, hi, name in SIZE_BINS]
    out = []
    for name, group in groups:
        if not group:
            continue
        mean = {k: float(np.mean([r[k] for r in group]))
                for k in ("found_air", "found_context", "dice_air", "dice_context")}
        out.append({"nodules": name, "n": len(group), **{k: round(v, 3) for k, v in mean.items()}})
    return out


def main() -> None:
    """Print the table (see the module docstring) and write the per-nodule JSON."""
    from benchmarks.common import series_dir, table
    from engines import create_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="exported .onnx model (sidecar beside it)")
    parser.add_argument("--vois", required=True, help="crop folder (image/, nodule_mask/)")
    parser.add_argument("--patients", help="JSON list of patient IDs (default: all crops)")
    parser.add_argument("--host", required=True,
                        help="LIDC series folder or .tar.xz with its reader XML")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8", "auto"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write per-nodule rows and the table here")
    args = parser.parse_args()
    patients = json.loads(Path(args.patients).read_text()) if args.patients else None
    host_dir = series_dir(args.host)
    host = load_host(host_dir)
    records = select_records(args.vois, patients)
    with create_engine("onnx", args.model, threads=args.threads,
                       precision=args.precision) as engine:
        rows = run(engine, host, records, seed=args.seed)
    summary = summary_rows(rows)
    skipped = sum("skipped" in r for r in rows)
    print(f"{len(rows) - skipped} nodules inserted ({skipped} skipped) into {host_dir.name}")
    print(table(summary, ["nodules", "n", "found_air", "found_context", "dice_air",
                          "dice_context"]))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"model": args.model, "host": str(host_dir), "seed": args.seed,
             "summary": summary, "per_nodule": rows}, indent=1))


if __name__ == "__main__":
    main()
