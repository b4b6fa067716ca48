"""The paper's classic baselines (not the learned model): HU thresholding and k-means.

Both isolate the lungs (:func:`pipeline.lungs.fast_lung_mask`), mark dense voxels inside
them, then apply the same candidate filter: a morphological opening that removes thin
vessels, connected components, and nodule-like size and shape limits (equivalent diameter
between the minimum volume and ``max_diameter_mm`` = 30 mm, the upper size of a pulmonary
nodule, and principal-axis ratios up to ``max_axis_ratio``, which drops tubular vessels and
flat fissure or pleura fragments). The parameters are generic textbook values, not fitted to
any case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from pipeline.lungs import fast_lung_mask
from pipeline.preprocess import bounding_box


@dataclass(frozen=True)
class BaselineParams:
    """Parameters shared by both baselines.

    Attributes
    ----------
    threshold_hu : float
        Threshold baseline: voxels above this HU inside the lungs are candidates.
    clusters : int
        k-means baseline: number of HU clusters (2 or 3); the densest is the lesion class.
    opening_mm : float
        Radius (mm) of the opening that separates nodules from thin vessels.
    min_volume_mm3, max_diameter_mm, max_axis_ratio : float
        Candidate filter (see the module docstring).
    """

    threshold_hu: float = -400.0
    clusters: int = 3
    opening_mm: float = 2.0
    min_volume_mm3: float = 30.0
    max_diameter_mm: float = 30.0
    max_axis_ratio: float = 3.0

    def __post_init__(self) -> None:
        if self.clusters not in (2, 3):
            raise ValueError(f"clusters must be 2 or 3, got {self.clusters!r}")
        for name in ("opening_mm", "min_volume_mm3", "max_diameter_mm", "max_axis_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


def threshold_segment(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    params: BaselineParams = BaselineParams(),
    lungs: np.ndarray | None = None,
) -> np.ndarray:
    """Threshold baseline: dense voxels inside the lungs, filtered to nodule-like blobs.

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.
    params : BaselineParams
    lungs : ndarray, optional
        Precomputed boolean lung mask (computed when omitted).

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` lesion mask.

    Raises
    ------
    ValueError
        If ``hu`` is not 3-D or ``lungs`` has another shape.
    """
    lungs = _lungs(hu, spacing, lungs)
    return _filter_candidates(lungs & (hu > params.threshold_hu), lungs, spacing, params)


def kmeans_segment(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    params: BaselineParams = BaselineParams(),
    lungs: np.ndarray | None = None,
) -> np.ndarray:
    """k-means baseline: cluster the lung HU values, keep the densest cluster, filter.

    Parameters and return value as :func:`threshold_segment`.

    Raises
    ------
    ValueError
        If ``hu`` is not 3-D or ``lungs`` has another shape.
    """
    lungs = _lungs(hu, spacing, lungs)
    if not lungs.any():
        return np.zeros(hu.shape, dtype=bool)
    centres = kmeans_1d(hu[lungs], params.clusters)
    cut = 0.5 * (centres[-1] + centres[-2])
    return _filter_candidates(lungs & (hu > cut), lungs, spacing, params)


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Lloyd's k-means on scalar values via a 1-HU histogram (deterministic).

    Centres start evenly spaced between the 0.1 and 99.9 percentiles, so a small dense
    cluster (lesions among lung parenchyma) gets its own centre.

    Returns
    -------
    ndarray
        ``(k,)`` sorted cluster centres.

    Raises
    ------
    ValueError
        If ``values`` is empty or ``k`` < 2.
    """
    if values.size == 0:
        raise ValueError("values must not be empty")
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k!r}")
    v = np.clip(np.round(values).astype(np.int64), -1100, 3000)
    counts = np.bincount(v - v.min()).astype(np.float64)
    levels = np.arange(counts.size, dtype=np.float64) + v.min()
    lo, hi = np.percentile(v, [0.1, 99.9])
    centres = np.linspace(lo, hi, k)
    for _ in range(iterations):
        assign = np.argmin(np.abs(levels[:, None] - centres[None, :]), axis=1)
        new = np.array([
            np.average(levels[assign == j], weights=counts[assign == j])
            if counts[assign == j].sum() > 0 else centres[j]
            for j in range(k)
        ])
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def _lungs(
    hu: np.ndarray, spacing: tuple[float, float, float], lungs: np.ndarray | None
) -> np.ndarray:
    if hu.ndim != 3:
        raise ValueError(f"hu must be a (z, y, x) volume, got shape {hu.shape}")
    if lungs is None:
        return fast_lung_mask(hu, spacing)
    if lungs.shape != hu.shape:
        raise ValueError(f"lungs shape {lungs.shape} differs from hu shape {hu.shape}")
    return lungs.astype(bool, copy=False)


def _filter_candidates(
    candidates: np.ndarray,
    lungs: np.ndarray,
    spacing: tuple[float, float, float],
    params: BaselineParams,
) -> np.ndarray:
    out = np.zeros(candidates.shape, dtype=bool)
    if not candidates.any():
        return out
    box = bounding_box(lungs, (0, 0, 0))
    img = sitk.GetImageFromArray(candidates[box].astype(np.uint8))
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    radius = [max(1, int(round(params.opening_mm / s))) for s in img.GetSpacing()]
    opened = sitk.BinaryMorphologicalOpening(img, radius, sitk.sitkBall)
    labels = sitk.ConnectedComponent(opened, True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    keep = [label for label in stats.GetLabels() if _nodule_like(stats, label, params)]
    if keep:
        arr = sitk.GetArrayFromImage(labels)
        out[box] = np.isin(arr, keep)
    return out


def _nodule_like(
    stats: sitk.LabelShapeStatisticsImageFilter, label: int, params: BaselineParams
) -> bool:
    if stats.GetPhysicalSize(label) < params.min_volume_mm3:
        return False
    if 2.0 * stats.GetEquivalentSphericalRadius(label) > params.max_diameter_mm:
        return False
    if stats.GetNumberOfPixels(label) < 4:
        return True
    return (
        stats.GetElongation(label) <= params.max_axis_ratio
        and stats.GetFlatness(label) <= params.max_axis_ratio
    )
