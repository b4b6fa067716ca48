"""Lung mask at reduced in-plane resolution (fast), mapped back to the native grid."""

from __future__ import annotations

import numpy as np

from pipeline.morphology import dilate_axis
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
    z, y, x = mask.shape
    full = np.empty((z, y * factor, x * factor), dtype=bool)
    blocks = full.reshape(z, y, factor, x, factor)
    for row in range(factor):
        for column in range(factor):
            blocks[:, :, row, :, column] = mask
    return full[:, : hu.shape[1], : hu.shape[2]]


def gate_radius(spacing: tuple[float, float, float], mm: float) -> tuple[int, int, int]:
    """Return the ``(z, y, x)`` box radius in voxels of a dilation by ``mm`` millimetres.

    Raises
    ------
    ValueError
        If ``mm`` is negative.
    """
    if mm < 0:
        raise ValueError(f"mm must be >= 0, got {mm!r}")
    return (int(round(mm / spacing[0])), int(round(mm / spacing[1])), int(round(mm / spacing[2])))


def dilate(mask: np.ndarray, spacing: tuple[float, float, float], mm: float) -> np.ndarray:
    """Dilate a ``(z, y, x)`` mask by about ``mm`` millimetres (box kernel per axis).

    The box is separable: one running OR per axis, each in a few doubling steps.

    Raises
    ------
    ValueError
        If ``mm`` is negative.
    """
    radius = gate_radius(spacing, mm)
    out = mask.astype(bool)
    if not any(radius) or not out.any():
        return out
    box = bounding_box(out, radius)
    grown = out[box]
    for axis, r in enumerate(radius):
        grown = dilate_axis(grown, axis, r)
    out[box] = grown
    return out


def dilated_box(
    mask: np.ndarray, spacing: tuple[float, float, float], mm: float
) -> tuple[slice, ...]:
    """Bounding box of ``dilate(mask, spacing, mm)`` without computing the dilation.

    Raises
    ------
    ValueError
        If the mask is empty or ``mm`` is negative.
    """
    return bounding_box(mask, gate_radius(spacing, mm))


def dilated_slices(mask: np.ndarray, spacing: tuple[float, float, float], mm: float) -> np.ndarray:
    """Return the indices of the non-empty slices of ``dilate(mask, spacing, mm)``."""
    flags = mask.any(axis=(1, 2))
    return np.flatnonzero(dilate_axis(flags, 0, gate_radius(spacing, mm)[0]))


def gate(
    candidates: np.ndarray,
    lungs: np.ndarray,
    spacing: tuple[float, float, float],
    mm: float,
) -> np.ndarray:
    """Return ``candidates & dilate(lungs, spacing, mm)``, dilating only around candidates.

    Parameters
    ----------
    candidates, lungs : ndarray
        Boolean ``(z, y, x)`` masks of the same shape.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.
    mm : float
        Dilation of ``lungs`` in mm.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` mask.
    """
    out = np.zeros(candidates.shape, dtype=bool)
    if not candidates.any():
        return out
    radius = gate_radius(spacing, mm)
    box = bounding_box(candidates, (0, 0, 0))
    outer = bounding_box(candidates, radius)
    inner = tuple(
        slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer, strict=True)
    )
    out[box] = candidates[box] & dilate(lungs[outer], spacing, mm)[inner]
    return out
