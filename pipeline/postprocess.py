"""Lesion post-processing: connected components, a minimum physical size, a shape gate."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from pipeline.preprocess import bounding_box
from pipeline.shape import drop_implausible


def label_lesions(
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    min_volume_mm3: float = 10.0,
    fully_connected: bool = True,
    shape_limits: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Split a binary lesion mask into connected lesions, largest first.

    Parameters
    ----------
    mask : ndarray
        ``(z, y, x)`` boolean lesion mask.
    spacing : tuple of float
        ``(z, y, x)`` voxel spacing in mm.
    min_volume_mm3 : float
        Components smaller than this volume (mm3) are removed.
    fully_connected : bool
        26-connectivity (True) or 6-connectivity (False).
    shape_limits : mapping, optional
        Components shaped outside these limits are removed as well
        (:func:`pipeline.shape.drop_implausible`; a model sidecar's ``shape_limits``).

    Returns
    -------
    ndarray
        ``(z, y, x)`` uint16 label map: 0 background, 1..n lesions sorted by decreasing size.

    Raises
    ------
    ValueError
        If ``mask`` is not 3-D, ``spacing`` is not three positive numbers,
        ``min_volume_mm3`` is negative or ``shape_limits`` is malformed.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be a (z, y, x) array, got shape {mask.shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing!r}")
    if min_volume_mm3 < 0:
        raise ValueError(f"min_volume_mm3 must be >= 0, got {min_volume_mm3!r}")
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.uint16)
    box = nonzero_box(mask)
    img = sitk.GetImageFromArray(mask[box].astype(np.uint8))
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    labels = sitk.ConnectedComponent(img, fully_connected)
    voxel_mm3 = float(np.prod(spacing))
    min_voxels = int(np.ceil(min_volume_mm3 / voxel_mm3))
    labels = sitk.RelabelComponent(
        labels, minimumObjectSize=max(min_voxels, 1), sortByObjectSize=True
    )
    cropped = sitk.GetArrayFromImage(labels)
    if shape_limits:
        cropped = drop_implausible(cropped, spacing, shape_limits)
    if cropped.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"too many lesions for a uint16 label map: {int(cropped.max())}")
    out = np.zeros(mask.shape, dtype=np.uint16)
    out[box] = cropped
    return out


def nonzero_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Return the bounding box of the non-zero voxels (mask must not be empty)."""
    return bounding_box(mask, (0,) * mask.ndim)


def keep_mostly_inside(
    mask: np.ndarray, region: np.ndarray, min_fraction: float = 0.5
) -> np.ndarray:
    """Keep the 26-connected components of ``mask`` that lie mostly inside ``region``.

    Parameters
    ----------
    mask : ndarray
        ``(z, y, x)`` boolean mask.
    region : ndarray
        Boolean mask of the same shape (e.g. the lungs).
    min_fraction : float
        A component is kept when at least this fraction of its voxels is in ``region``.

    Returns
    -------
    ndarray
        Boolean mask.

    Raises
    ------
    ValueError
        If the shapes differ or ``min_fraction`` is outside [0, 1].
    """
    if mask.shape != region.shape:
        raise ValueError(f"mask {mask.shape} and region {region.shape} must have the same shape")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction!r}")
    if not mask.any():
        return mask.astype(bool)
    box = nonzero_box(mask)
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask[box].astype(np.uint8)), True)
    inside = sitk.GetImageFromArray(region[box].astype(np.uint8))
    stats = sitk.LabelStatisticsImageFilter()
    stats.Execute(inside, labels)
    keep = [k for k in stats.GetLabels() if k and stats.GetMean(k) >= min_fraction]
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = np.isin(sitk.GetArrayFromImage(labels), keep)
    return out
