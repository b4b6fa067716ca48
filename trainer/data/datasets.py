"""Nodule-crop folders, patient splits and the preprocessed patch cache.

A crop folder holds ``image/*.nii.gz`` (HU, int16), ``nodule_mask/*.nii.gz`` (0/1) named
``PATIENT_R_K.nii.gz`` (patient, nodule; LIDC: ``LIDC-IDRI-NNNN_R_K.nii.gz``; a site's own
crops, :mod:`trainer.data.crops`, carry a pseudonym) and optionally ``nodules.csv``. Patches are
built with :func:`pipeline.preprocess.prepare_slices`, the function inference uses.
Arrays are ``(z, y, x)``; spacings ``(z, y, x)`` mm.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATIENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
"""A patient key in crop names and series lists (LIDC: ``LIDC-IDRI-NNNN``; else a pseudonym)."""
NAME_RE = re.compile(rf"^({PATIENT_RE.pattern})_R_(\d+)\.nii\.gz$")
"""Crop file names: patient (letters, digits, ``.`` and ``-``), ``_R_``, nodule number."""
HELD_OUT_PATIENTS = ("LIDC-IDRI-0001", "LIDC-IDRI-0002")
"""Patients with whole series in the shared data: always in the test split."""

TEXTURES = {1: "non-solid", 2: "non-solid", 3: "part-solid", 4: "solid", 5: "solid"}


@dataclass(frozen=True)
class CropRecord:
    """One nodule crop: file paths and attributes from ``nodules.csv``."""

    name: str
    patient: str
    nodule: int
    image_path: Path
    mask_path: Path
    texture: str = "unknown"
    diameter_mm: float = float("nan")


def _read_attributes(csv_path: Path) -> dict[tuple[str, int], tuple[str, float]]:
    if not csv_path.is_file():
        return {}
    out = {}
    with csv_path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                code = row["Texture_value"]
                texture = TEXTURES.get(int(float(code)), "unknown") if code else "unknown"
                out[(row["patient_id"], int(row["nodule_id"]))] = (
                    texture, float(row["diameter_mm"])
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"malformed row in {csv_path}: {row!r} ({exc})") from exc
    return out


def list_crops(vois_dir: str | Path) -> list[CropRecord]:
    """List the crops of a folder in the crop layout.

    Raises
    ------
    FileNotFoundError
        If the folder, ``image/`` or ``nodule_mask/`` is missing, or an image has no mask.
    ValueError
        If the folder holds no images or a file name does not follow the pattern.
    """
    root = Path(vois_dir)
    for sub in (root, root / "image", root / "nodule_mask"):
        if not sub.is_dir():
            raise FileNotFoundError(f"crop folder layout needs directory {sub} (vois_dir={root})")
    images = sorted((root / "image").glob("*.nii.gz"))
    if not images:
        raise ValueError(f"no *.nii.gz images in {root / 'image'}")
    attrs = _read_attributes(root / "nodules.csv")
    records = []
    for path in images:
        match = NAME_RE.match(path.name)
        if match is None:
            raise ValueError("crop file name must be PATIENT_R_K.nii.gz (e.g. "
                             f"LIDC-IDRI-0001_R_1.nii.gz), got {path.name}")
        mask = root / "nodule_mask" / path.name
        if not mask.is_file():
            raise FileNotFoundError(f"mask missing for crop {path.name}: {mask}")
        key = (match.group(1), int(match.group(2)))
        texture, diameter = attrs.get(key, ("unknown", float("nan")))
        records.append(CropRecord(path.name[:-7], key[0], key[1], path, mask, texture, diameter))
    return records


def read_crop(record: CropRecord) -> tuple[np.ndarray, np.ndarray, tuple, np.ndarray]:
    """Read a crop.

    Returns
    -------
    hu : ndarray
        ``(z, y, x)`` float32 HU.
    mask : ndarray
        ``(z, y, x)`` bool nodule mask.
    spacing : tuple of float
        ``(z, y, x)`` mm.
    z_positions : ndarray
        ``(z,)`` slice positions (mm).

    Raises
    ------
    ValueError
        If image and mask differ in shape or the image is not 3D.
    """
    import SimpleITK as sitk

    img = sitk.ReadImage(str(record.image_path))
    hu = sitk.GetArrayFromImage(img).astype(np.float32)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(record.mask_path))) > 0
    if hu.ndim != 3 or hu.shape != mask.shape:
        raise ValueError(
            f"crop {record.name}: image {hu.shape} and mask {mask.shape} must be equal 3D shapes"
        )
    sx, sy, sz = img.GetSpacing()
    z = img.GetOrigin()[2] + sz * np.arange(hu.shape[0]) * np.sign(img.GetDirection()[8] or 1.0)
    if z.size > 1 and z[1] < z[0]:
        hu, mask, z = hu[::-1].copy(), mask[::-1].copy(), z[::-1].copy()
    return hu, mask, (float(sz), float(sy), float(sx)), z


def patient_split(
    patients: list[str], test_fraction: float, val_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Split patients into train/val/test; :data:`HELD_OUT_PATIENTS` always go to test.

    Raises
    ------
    ValueError
        If the fractions are out of range or there are too few patients.
    """
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ValueError(f"bad fractions test={test_fraction}, val={val_fraction}")
    unique = sorted(set(patients))
    if len(unique) < 3:
        raise ValueError(f"need at least 3 patients to split, got {len(unique)}")
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    forced = [p for p in order if p in HELD_OUT_PATIENTS]
    rest = [p for p in order if p not in HELD_OUT_PATIENTS]
    n_test = max(1, round(test_fraction * len(unique)) - len(forced))
    n_val = max(1, round(val_fraction * len(unique)))
    return {
        "test": sorted(forced + rest[:n_test]),
        "val": sorted(rest[n_test : n_test + n_val]),
        "train": sorted(rest[n_test + n_val :]),
    }


def label_subset(train_patients: list[str], fraction: float, seed: int) -> list[str]:
    """Return the first ``ceil(fraction * n)`` patients of a seeded order (nested in fraction).

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(train_patients)
    rng = np.random.default_rng(seed + 1000)
    ordered = [ordered[i] for i in rng.permutation(len(ordered))]
    return sorted(ordered[: max(1, math.ceil(fraction * len(ordered)))])


def read_reference_mask(mask_path: str | Path, z_positions: np.ndarray, shape: tuple) -> np.ndarray:
    """Read a NIfTI reference mask and order its slices like the series (by physical z).

    Raises
    ------
    ValueError
        If the in-plane size or slice count does not match the series.
    """
    import SimpleITK as sitk

    img = sitk.ReadImage(str(mask_path))
    arr = sitk.GetArrayFromImage(img) > 0
    if arr.shape != tuple(shape):
        raise ValueError(f"mask {mask_path} shape {arr.shape} != series shape {tuple(shape)}")
    zs = np.array([img.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(arr.shape[0])])
    order = np.argsort(zs)
    if np.abs(np.sort(zs) - np.asarray(z_positions)).max() > 0.5 and np.abs(
        np.sort(-zs) - np.asarray(z_positions)
    ).max() > 0.5:
        raise ValueError(f"mask {mask_path} slice positions do not match the series")
    return arr[order]


def crop_split(patients: list[str], test_fraction: float, val_fraction: float,
               label_fraction: float) -> tuple[dict[str, list[str]], list[str]]:
    """Return the patient split and the labelled training patients, as fine-tuning uses them.

    Both draws use seed 0, so every run over the same crops splits them alike.

    Raises
    ------
    ValueError
        If a fraction is out of range (see :func:`patient_split`, :func:`label_subset`).
    """
    split = patient_split(patients, test_fraction, val_fraction, seed=0)
    return split, label_subset(split["train"], label_fraction, seed=0)
