"""Lung mask at reduced in-plane resolution (fast), mapped back to the native grid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from pipeline.preprocess import bounding_box, lung_mask


def fast_lung_mask(
    hu: np.ndarray, spacing: tuple[float, float, float], factor: int = 2
) -> np.ndarray:
    """Run :func:`pipeline.preprocess.lung_mask` on every ``factor``-th row and column.

    The morphology of the lung mask dominates the run time of a series; on a 2x coarser
    in-plane grid it is about 4x cheaper and the mask differs only along its border by at
    most ``factor`` pixels.

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.
    factor : int
        In-plane subsampling factor (1 = native resolution).

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` lung mask on the native grid.

    Raises
    ------
    ValueError
        If ``factor`` < 1 or ``hu`` is not 3-D.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    if hu.ndim != 3:
        raise ValueError(f"hu must be a (z, y, x) volume, got shape {hu.shape}")
    if factor == 1:
        return lung_mask(hu, spacing)
    coarse = np.ascontiguousarray(hu[:, ::factor, ::factor])
    mask = lung_mask(coarse, (spacing[0], spacing[1] * factor, spacing[2] * factor))
    full = np.repeat(np.repeat(mask, factor, axis=1), factor, axis=2)
    return full[:, : hu.shape[1], : hu.shape[2]]


def dilate(mask: np.ndarray, spacing: tuple[float, float, float], mm: float) -> np.ndarray:
    """Dilate a ``(z, y, x)`` mask by about ``mm`` millimetres (box kernel per axis).

    Raises
    ------
    ValueError
        If ``mm`` is negative.
    """
    if mm < 0:
        raise ValueError(f"mm must be >= 0, got {mm!r}")
    if mm == 0 or not mask.any():
        return mask.astype(bool)
    radius = [int(round(mm / s)) for s in (spacing[2], spacing[1], spacing[0])]
    box = bounding_box(mask, (radius[2], radius[1], radius[0]))
    img = sitk.GetImageFromArray(mask[box].astype(np.uint8))
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = sitk.GetArrayFromImage(sitk.BinaryDilate(img, radius, sitk.sitkBox)).astype(bool)
    return out
