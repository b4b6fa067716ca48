"""The region searched for lesions: each lung's outline with its concavities filled.

A threshold lung mask follows the aerated lung, so a tumour that replaces lung against the
chest wall, the spine, the hilum or the mediastinum lies outside it: on the annotated masses
of ``../shared/data`` the lung mask held 0-32 % of the tumour. Filling, in every axial slice,
the convex hull of each lung restores what the tumour took from the outline (a mass pushes a
concave bite into the lung) and adds the hilum, which sits in the medial concavity of each
lung. ``python -m benchmarks.lung_field`` measures the share of each annotated lesion inside
the field and how much larger than the lung mask the field is.

Arrays are ``(z, y, x)``; spacings ``(z, y, x)`` in mm.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from pipeline.geometry2d import convex_hull
from pipeline.morphology import dilate_axis

SINGLE_LUNG_MAX_WIDTH_MM = 180.0
"""A slice's lung component wider than this (left-right) is taken as both lungs joined
(anterior junction, carina) and split at its middle column before its hull is filled: an
adult hemithorax is 10-16 cm wide, both together 25-35 cm."""

FIELD_Z_REACH_MM = 20.0
"""Each slice's hull also spans the lung of the slices within this distance: where a tumour
fills the back of the chest in some slices, the lung above and below it still reaches the
chest wall (PYRADIOMICS-LUNG2: 0.92 -> 0.99 of its mass on the pleura inside the field)."""

MIN_COMPONENT_PIXELS = 16
"""A lung's part of a slice smaller than this is kept as it is, without a hull."""


def convex_fill(mask: np.ndarray) -> np.ndarray:
    """Return the filled convex hull of the True pixels of a 2-D mask.

    Parameters
    ----------
    mask : ndarray
        Boolean ``(y, x)`` mask.

    Returns
    -------
    ndarray
        Boolean ``(y, x)`` mask holding ``mask`` and every pixel whose centre lies in the
        convex hull of the centres of ``mask``'s pixels.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (y, x), got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    out = mask.astype(bool)
    if rows.size == 0:
        return out
    hull = convex_hull(_row_extremes(mask, rows))
    if len(hull) < 3:
        return out
    low, high = _row_spans(hull, rows[0], rows[-1])
    columns = np.arange(mask.shape[1])
    span = (columns >= np.ceil(low - 1e-6)[:, None]) & (columns <= np.floor(high + 1e-6)[:, None])
    out[rows[0] : rows[-1] + 1] |= span
    return out


def _row_extremes(mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(n, 2)`` points ``(x, y)``: the first and last True pixel of every non-empty row."""
    band = mask[rows]
    first = band.argmax(axis=1)
    last = band.shape[1] - 1 - band[:, ::-1].argmax(axis=1)
    points = np.concatenate([np.stack([first, rows], 1), np.stack([last, rows], 1)])
    return points.astype(np.float64)


def _row_spans(hull: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest x of the polygon ``hull`` on each row ``first..last``."""
    y = np.arange(first, last + 1, dtype=np.float64)[None, :]
    x0, y0 = hull[:, 0:1], hull[:, 1:2]
    x1, y1 = np.roll(hull[:, 0], -1)[:, None], np.roll(hull[:, 1], -1)[:, None]
    flat = y0 == y1
    t = np.where(flat, 0.0, (y - y0) / np.where(flat, 1.0, y1 - y0))
    on_edge = (t >= -1e-9) & (t <= 1 + 1e-9) & ~flat
    x = x0 + t * (x1 - x0)
    low = np.where(on_edge, x, np.inf).min(axis=0)
    high = np.where(on_edge, x, -np.inf).max(axis=0)
    flat_rows = flat & (y == y0)
    low = np.minimum(low, np.where(flat_rows, np.minimum(x0, x1), np.inf).min(axis=0))
    high = np.maximum(high, np.where(flat_rows, np.maximum(x0, x1), -np.inf).max(axis=0))
    return low, high


def lung_field(
    lungs: np.ndarray,
    spacing: tuple[float, float, float],
    z_reach_mm: float = FIELD_Z_REACH_MM,
    factor: int = 2,
) -> np.ndarray:
    """Return the search field: per slice, the filled convex hull of each lung.

    The hull of a lung in slice ``z`` is taken over that lung's voxels in the slices within
    ``z_reach_mm`` of ``z`` (so the field also reaches the apex and base a little beyond
    the aerated lung).

    Parameters
    ----------
    lungs : ndarray
        Boolean ``(z, y, x)`` lung mask (:func:`pipeline.lungs.fast_lung_mask`).
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.
    z_reach_mm : float
        How far along z the lung of neighbouring slices enters a slice's hull (>= 0).
    factor : int
        The hulls are filled on every ``factor``-th row and column (as
        :func:`pipeline.lungs.fast_lung_mask` computes the lung mask) and each coarse pixel
        covers a ``factor`` x ``factor`` block of the result.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` mask holding ``lungs``.

    Raises
    ------
    ValueError
        If ``lungs`` is not 3-D, ``z_reach_mm`` is negative or ``factor`` < 1.
    """
    if lungs.ndim != 3:
        raise ValueError(f"lungs must be a (z, y, x) volume, got shape {lungs.shape}")
    if z_reach_mm < 0:
        raise ValueError(f"z_reach_mm must be >= 0, got {z_reach_mm!r}")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    out = lungs.astype(bool)
    if not out.any():
        return out
    coarse = out[:, ::factor, ::factor]
    hulls = np.zeros(coarse.shape, dtype=bool)
    max_width = max(1, int(round(SINGLE_LUNG_MAX_WIDTH_MM / (float(spacing[2]) * factor))))
    reach = int(round(z_reach_mm / float(spacing[0])))
    for z, box, component in _slice_components(dilate_axis(coarse, 0, reach)):
        hulls[z][box] |= _fill_component(component, max_width)
    fine = np.repeat(np.repeat(hulls, factor, axis=1), factor, axis=2)
    return out | fine[:, : out.shape[1], : out.shape[2]]


def _slice_components(mask: np.ndarray):
    """Yield ``(z, box, part)``: the pixels of one 3-D lung component in slice ``z``.

    A lung cut in two in a slice (by a tumour, a fissure or the field of view) is still one
    3-D component, so its hull spans the gap.
    """
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    array = sitk.GetArrayViewFromImage(labels)
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        plane = array[z]
        found, counts = np.unique(plane[plane > 0], return_counts=True)
        for label in found[counts >= MIN_COMPONENT_PIXELS]:
            part = plane == label
            rows = np.flatnonzero(part.any(axis=1))
            columns = np.flatnonzero(part.any(axis=0))
            box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
            yield int(z), box, part[box]


def _fill_component(component: np.ndarray, max_width: int) -> np.ndarray:
    """Hull of one slice component, split at its middle column when wider than one lung."""
    width = component.shape[1]
    if width <= max_width:
        return convex_fill(component)
    middle = width // 2
    out = np.zeros_like(component)
    out[:, :middle] = convex_fill(component[:, :middle])
    out[:, middle:] = convex_fill(component[:, middle:])
    return out
