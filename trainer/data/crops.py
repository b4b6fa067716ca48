"""Cut the lesions of whole series (a series list) into the crop layout the trainer reads.

Each connected lesion of an entry's mask (26-connected) becomes one crop, shaped like the
LIDC crops the default model was trained on: the lesion's own slices, and in-plane a square
centred on it of side ``max(MIN_SIDE_MM, extent + 2 * MARGIN_MM)`` (LIDC crops: 25-41 mm,
median 30 mm, at least 4 mm of margin in 95 %), clipped to the image. The crop's mask holds
every lesion voxel inside it, so a neighbouring lesion is never taught as background.
Files: ``image/PATIENT_R_K.nii.gz`` (HU, int16), ``nodule_mask/PATIENT_R_K.nii.gz`` (0/1)
and ``nodules.csv`` (``patient_id``, ``nodule_id``, ``diameter_mm`` = the diameter of the
sphere of the lesion's volume; texture empty = unknown), with the entry's pseudonym as
PATIENT. Lesions smaller than ``MIN_VOLUME_MM3`` are skipped and counted.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.series import CTSeries
from trainer.data.series_list import ListedSeries, load_listed

MIN_SIDE_MM = 30.0
MARGIN_MM = 10.0
MIN_VOLUME_MM3 = 10.0
"""As the pipeline's default minimum lesion volume."""
CSV_FIELDS = ("patient_id", "nodule_id", "diameter_mm", "Texture_value")


def lesion_boxes(lesions: np.ndarray, spacing: tuple[float, float, float]
                 ) -> tuple[list[tuple[np.ndarray, tuple[slice, slice, slice]]], int]:
    """Return each connected lesion (largest first) with its crop box.

    Parameters
    ----------
    lesions : ndarray
        Boolean ``(z, y, x)`` mask.
    spacing : tuple of float
        ``(z, y, x)`` mm.

    Returns
    -------
    boxes : list of (ndarray, tuple of slice)
        The lesion's own boolean mask and its crop box, for every lesion of at least
        :data:`MIN_VOLUME_MM3`.
    skipped : int
        How many smaller lesions were left out.
    """
    from pipeline.postprocess import label_lesions
    from trainer.evaluation.components import view_box

    labels = label_lesions(lesions, spacing, 0.0)
    voxel_mm3 = float(np.prod(spacing))
    out, skipped = [], 0
    for k in range(1, int(labels.max()) + 1):
        own = labels == k
        if own.sum() * voxel_mm3 < MIN_VOLUME_MM3:
            skipped += 1
            continue
        zz, yy, xx = np.nonzero(own)
        extent = max((yy.max() - yy.min() + 1) * spacing[1], (xx.max() - xx.min() + 1) * spacing[2])
        centre = ((yy.min() + yy.max()) / 2, (xx.min() + xx.max()) / 2)
        square = view_box(centre, spacing[1:], lesions.shape[1:],
                          max(MIN_SIDE_MM, extent + 2 * MARGIN_MM))
        out.append((own, (slice(int(zz.min()), int(zz.max()) + 1), *square)))
    return out, skipped


def _write_nifti(array: np.ndarray, series: CTSeries, box: tuple[slice, ...], path: Path) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    dz, dy, dx = series.spacing
    img.SetSpacing((dx, dy, dz))
    corner = series.index_to_patient(np.array([[box[0].start, box[1].start, box[2].start]]))[0]
    img.SetOrigin(tuple(float(v) for v in corner))
    sitk.WriteImage(img, str(path), True)


def write_entry_crops(entry: ListedSeries, out_dir: Path, first: int = 1
                      ) -> tuple[list[dict], int]:
    """Write the crops of one listed series, numbered from ``first``.

    Returns
    -------
    rows : list of dict
        Their ``nodules.csv`` rows.
    skipped : int
        Lesions under :data:`MIN_VOLUME_MM3`.

    Raises
    ------
    ValueError
        As :func:`trainer.data.series_list.load_listed`.
    """
    series, lesions = load_listed(entry)
    if lesions is None:
        return [], 0
    found, skipped = lesion_boxes(lesions, series.spacing)
    rows = []
    voxel_mm3 = float(np.prod(series.spacing))
    for k, (own, box) in enumerate(found, start=first):
        name = f"{entry.patient}_R_{k}.nii.gz"
        hu = np.clip(np.round(series.hu[box]), -32768, 32767).astype(np.int16)
        _write_nifti(hu, series, box, out_dir / "image" / name)
        _write_nifti(lesions[box].astype(np.uint8), series, box, out_dir / "nodule_mask" / name)
        diameter = (6.0 * own.sum() * voxel_mm3 / np.pi) ** (1.0 / 3.0)
        rows.append({"patient_id": entry.patient, "nodule_id": k,
                     "diameter_mm": round(float(diameter), 2), "Texture_value": ""})
    return rows, skipped


def write_crops(entries: list[ListedSeries], out_dir: str | Path) -> dict:
    """Write the crops of every ``lesions`` entry into ``out_dir`` in the crop layout.

    The crops are written into a hidden folder beside ``out_dir`` and moved into place
    when every entry has been cut, so a failure leaves no half-written crop folder.

    Returns
    -------
    dict
        ``crops`` written, ``patients`` with at least one crop, ``skipped_small`` lesions.

    Raises
    ------
    ValueError
        If ``out_dir`` exists and is not empty (nothing is overwritten), or as
        :func:`write_entry_crops`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir} exists and is not an empty folder; choose a new one")
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        summary = _write_all(entries, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rmdir()
    partial.rename(out_dir)
    return summary


def _write_all(entries: list[ListedSeries], out_dir: Path) -> dict:
    for sub in ("image", "nodule_mask"):
        (out_dir / sub).mkdir(parents=True)
    rows, small = [], 0
    for entry in tqdm(entries, desc="series", mininterval=5):
        first = 1 + sum(r["patient_id"] == entry.patient for r in rows)
        entry_rows, entry_small = write_entry_crops(entry, out_dir, first)
        rows += entry_rows
        small += entry_small
    with (out_dir / "nodules.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return {"crops": len(rows), "patients": len({r["patient_id"] for r in rows}),
            "skipped_small": small}
