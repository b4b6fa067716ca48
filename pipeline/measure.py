"""Per-lesion measurements on the native ``(z, y, x)`` grid (mm, mm3, HU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from pipeline.geometry2d import outline, principal_axes
from pipeline.morphology import fill_holes
from pipeline.postprocess import nonzero_box

NECROTIC_HU = (-10.0, 40.0)
"""HU range counted as necrotic (fluid-like) tissue, inclusive."""
CAVITARY_HU = -500.0
"""Voxels of the filled lesion below this HU count as cavity (air)."""


@dataclass
class Lesion:
    """Measurements of one lesion (label ``label`` of the label map).

    Attributes
    ----------
    label : int
        Label value in the label map (1 = largest).
    voxel_count : int
    volume_mm3 : float
    key_slice : int
        Volume index ``z`` of the slice where the lesion's area is largest.
    long_axis_mm, short_axis_mm : float
        Longest in-plane diameter on the key slice and the longest diameter perpendicular to it.
    long_axis_points, short_axis_points : list of list of float
        End points ``[[column, row], [column, row]]`` (DICOM SCOORD image coordinates).
    contour : list of list of float
        Closed outline on the key slice, ``[column, row]`` image coordinates.
    centroid_zyx : list of float
        Centre of mass in voxel indices.
    centroid_mm : list of float or None
        Centre of mass in patient coordinates (LPS, mm) when the geometry is known.
    mean_hu, min_hu, max_hu : float
    necrotic_fraction : float
        Fraction of lesion voxels in ``NECROTIC_HU``.
    cavitary_fraction : float
        Fraction of the hole-filled lesion below ``CAVITARY_HU``.
    """

    label: int
    voxel_count: int
    volume_mm3: float
    key_slice: int
    long_axis_mm: float
    short_axis_mm: float
    long_axis_points: list[list[float]]
    short_axis_points: list[list[float]]
    contour: list[list[float]]
    centroid_zyx: list[float]
    centroid_mm: list[float] | None
    mean_hu: float
    min_hu: float
    max_hu: float
    necrotic_fraction: float
    cavitary_fraction: float

    def to_json(self) -> dict[str, Any]:
        """Return the measurements as JSON-serialisable values (no contour)."""
        out = {k: v for k, v in self.__dict__.items() if k != "contour"}
        out["contour_points"] = len(self.contour)
        return out


def measure_lesions(
    labels: np.ndarray,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    index_to_patient: Any = None,
) -> list[Lesion]:
    """Measure every lesion of a label map.

    Parameters
    ----------
    labels : ndarray
        ``(z, y, x)`` integer label map (0 background).
    hu : ndarray
        ``(z, y, x)`` CT in HU, same shape.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.
    index_to_patient : callable, optional
        Maps ``(n, 3)`` voxel indices to patient coordinates (e.g.
        :meth:`pipeline.series.CTSeries.index_to_patient`).

    Returns
    -------
    list of Lesion
        In label order.

    Raises
    ------
    ValueError
        If the shapes differ or ``spacing`` is invalid.
    """
    if labels.shape != hu.shape or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and hu {hu.shape} must be equal 3-D shapes")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing!r}")
    if not labels.any():
        return []
    outer = nonzero_box(labels)
    base = [s.start for s in outer]
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.GetImageFromArray(labels[outer].astype(np.uint32)))
    lesions = []
    for label in sorted(stats.GetLabels()):
        x0, y0, z0, nx, ny, nz = stats.GetBoundingBox(label)
        x0, y0, z0 = x0 + base[2], y0 + base[1], z0 + base[0]
        box = (slice(z0, z0 + nz), slice(y0, y0 + ny), slice(x0, x0 + nx))
        lesion = _measure_one(labels[box] == label, hu[box], spacing, (z0, y0, x0), int(label))
        if index_to_patient is not None:
            lesion.centroid_mm = [float(v) for v in index_to_patient(lesion.centroid_zyx)[0]]
        lesions.append(lesion)
    return lesions


def _measure_one(
    mask: np.ndarray,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    offset: tuple[int, int, int],
    label: int,
) -> Lesion:
    values = hu[mask].astype(np.float64)
    areas = mask.sum(axis=(1, 2))
    key = int(np.argmax(areas))
    axes = principal_axes(mask[key], (spacing[1], spacing[2]))
    shift = np.array([offset[2], offset[1]], dtype=np.float64)
    centroid = np.argwhere(mask).mean(axis=0) + np.asarray(offset)
    filled = _filled(mask)
    necrotic = (values >= NECROTIC_HU[0]) & (values <= NECROTIC_HU[1])
    return Lesion(
        label=label,
        voxel_count=int(mask.sum()),
        volume_mm3=float(mask.sum() * np.prod(spacing)),
        key_slice=key + offset[0],
        long_axis_mm=axes.long_mm,
        short_axis_mm=float(axes.short_mm),
        long_axis_points=(axes.long_points + shift).tolist(),
        short_axis_points=(axes.short_points + shift).tolist(),
        contour=(outline(mask[key]) + shift).tolist(),
        centroid_zyx=[float(v) for v in centroid],
        centroid_mm=None,
        mean_hu=float(values.mean()),
        min_hu=float(values.min()),
        max_hu=float(values.max()),
        necrotic_fraction=float(necrotic.mean()),
        cavitary_fraction=float((hu[filled] < CAVITARY_HU).mean()),
    )


def _filled(mask: np.ndarray) -> np.ndarray:
    """Fill holes in 3-D and in every axial slice (union), so cavities count as inside."""
    return fill_holes(mask) | fill_holes(mask, per_slice=True)
