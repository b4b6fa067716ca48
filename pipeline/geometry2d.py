"""2-D geometry on binary slices: outline polygon, convex hull, long and short axes.

Image coordinates follow DICOM SCOORD: ``(column, row)`` with ``(0, 0)`` the top-left corner of
the top-left pixel, so the centre of pixel ``[r, c]`` is ``(c + 0.5, r + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from pipeline.morphology import fill_holes


@dataclass(frozen=True)
class Axes:
    """Longest in-plane diameter and the longest diameter perpendicular to it.

    Attributes
    ----------
    long_mm, short_mm : float
        Lengths in mm (extent of the pixel squares along the axis).
    long_points, short_points : ndarray
        ``(2, 2)`` end points as ``(column, row)`` image coordinates.
    """

    long_mm: float
    short_mm: float
    long_points: np.ndarray
    short_points: np.ndarray


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Return the convex hull of ``(n, 2)`` points (monotone chain), counter-clockwise."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts
    ordered = [(float(x), float(y)) for x, y in pts.tolist()]  # plain floats: a fast loop
    lower = _half_hull(ordered)
    upper = _half_hull(ordered[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _half_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One chain of the monotone-chain hull: left turns only, along ``points``."""
    chain: list[tuple[float, float]] = []
    for px, py in points:
        while len(chain) >= 2:
            (ox, oy), (ax, ay) = chain[-2], chain[-1]
            if (ax - ox) * (py - oy) - (ay - oy) * (px - ox) > 0:
                break
            chain.pop()
        chain.append((px, py))
    return chain


def principal_axes(mask: np.ndarray, spacing_yx: tuple[float, float]) -> Axes:
    """Measure the longest diameter of a 2-D mask and its longest perpendicular diameter.

    Parameters
    ----------
    mask : ndarray
        ``(rows, columns)`` boolean slice mask (not empty).
    spacing_yx : tuple of float
        Row and column spacing in mm.

    Returns
    -------
    Axes

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or is empty.
    """
    if mask.ndim != 2 or not mask.any():
        raise ValueError(f"mask must be a non-empty 2-D array, got shape {mask.shape}")
    sy, sx = float(spacing_yx[0]), float(spacing_yx[1])
    rows, cols = np.nonzero(mask)
    mm = np.column_stack([(cols + 0.5) * sx, (rows + 0.5) * sy])
    hull = convex_hull(mm)
    if len(hull) < 2:
        u = np.array([1.0, 0.0])
        a = b = mm[0]
    else:
        d = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=2)
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        a, b = hull[i], hull[j]
        u = (b - a) / np.linalg.norm(b - a)
    v = np.array([-u[1], u[0]])
    long_half = 0.5 * (abs(u[0]) * sx + abs(u[1]) * sy)
    short_half = 0.5 * (abs(v[0]) * sx + abs(v[1]) * sy)
    long_points = np.array([a - long_half * u, b + long_half * u])
    short_mm, short_points = _perpendicular(mm, u, v, min(sx, sy), short_half)
    scale = np.array([sx, sy])
    return Axes(
        float(np.linalg.norm(long_points[1] - long_points[0])),
        short_mm,
        long_points / scale,
        short_points / scale,
    )


def _perpendicular(
    mm: np.ndarray, u: np.ndarray, v: np.ndarray, bin_mm: float, half: float
) -> tuple[float, np.ndarray]:
    along = mm @ u
    across = mm @ v
    bins = np.round((along - along.min()) / bin_mm).astype(int)
    lo_by_bin = np.full(bins.max() + 1, np.inf)
    hi_by_bin = np.full(bins.max() + 1, -np.inf)
    np.minimum.at(lo_by_bin, bins, across)
    np.maximum.at(hi_by_bin, bins, across)
    extent = hi_by_bin - lo_by_bin
    best_bin = int(np.argmax(np.where(np.isfinite(extent), extent, -1.0)))
    best = float(extent[best_bin]) + 2 * half
    t = along.min() + best_bin * bin_mm
    p0 = t * u + (lo_by_bin[best_bin] - half) * v
    p1 = t * u + (hi_by_bin[best_bin] + half) * v
    return best, np.array([p0, p1])


def outline(mask: np.ndarray) -> np.ndarray:
    """Trace the outer boundary of the largest component of a 2-D mask along pixel edges.

    Parameters
    ----------
    mask : ndarray
        ``(rows, columns)`` boolean slice mask (not empty).

    Returns
    -------
    ndarray
        ``(n, 2)`` closed polygon (first point repeated last) in ``(column, row)`` image
        coordinates, collinear vertices removed.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or is empty.
    """
    if mask.ndim != 2 or not mask.any():
        raise ValueError(f"mask must be a non-empty 2-D array, got shape {mask.shape}")
    region = _largest_filled(mask)
    padded = np.pad(region, 1)
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    rows, cols = np.nonzero(region)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        pr, pc = r + 1, c + 1
        if not padded[pr - 1, pc]:
            edges.setdefault((c, r), []).append((c + 1, r))
        if not padded[pr, pc + 1]:
            edges.setdefault((c + 1, r), []).append((c + 1, r + 1))
        if not padded[pr + 1, pc]:
            edges.setdefault((c + 1, r + 1), []).append((c, r + 1))
        if not padded[pr, pc - 1]:
            edges.setdefault((c, r + 1), []).append((c, r))
    start = min(edges)
    path = [start]
    current = start
    while edges.get(current):
        current = edges[current].pop()
        path.append(current)
    return _drop_collinear(np.array(path, dtype=np.float64))


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(img, False), sortByObjectSize=True)
    largest = sitk.BinaryThreshold(labels, 1, 1, 1, 0)
    return fill_holes(sitk.GetArrayFromImage(largest).astype(bool))


def _drop_collinear(path: np.ndarray) -> np.ndarray:
    if len(path) <= 4:
        return path
    closed = path[:-1]
    prev = np.roll(closed, 1, axis=0)
    nxt = np.roll(closed, -1, axis=0)
    cross = (closed[:, 0] - prev[:, 0]) * (nxt[:, 1] - closed[:, 1]) - (
        closed[:, 1] - prev[:, 1]
    ) * (nxt[:, 0] - closed[:, 0])
    kept = closed[cross != 0]
    return np.vstack([kept, kept[:1]])
