"""Crop-level classic baselines: HU thresholding and k-means, keeping the central blob.

A nodule crop is centred on its nodule, so after separating dense voxels from lung
parenchyma (a fixed HU threshold, or the densest of ``k`` HU clusters from
:func:`pipeline.baseline.kmeans_1d`) both keep the connected component closest to the crop
centre. The whole-series baselines live in :mod:`pipeline.baseline`.
"""

from __future__ import annotations

import numpy as np

from trainer.evaluation.metrics import label_components

THRESHOLD_HU = -400.0
"""Generic solid/part-solid versus aerated-lung cut (not fitted to any data here)."""


def central_component(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Keep the connected component of ``mask`` nearest (in mm) to the volume centre.

    Raises
    ------
    ValueError
        If ``mask`` is not 3-D.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be (z, y, x), got shape {mask.shape}")
    labels, n = label_components(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    coords = np.argwhere(labels > 0)
    centre = (np.array(mask.shape) - 1) / 2.0
    dist = (((coords - centre) * np.asarray(spacing)) ** 2).sum(axis=1)
    nearest = labels[tuple(coords[int(np.argmin(dist))])]
    return labels == nearest


def threshold_crop(
    hu: np.ndarray, spacing: tuple[float, float, float], threshold_hu: float = THRESHOLD_HU
) -> np.ndarray:
    """Voxels above ``threshold_hu``, central component.

    Raises
    ------
    ValueError
        If ``hu`` is not 3-D.
    """
    return central_component(np.asarray(hu) > threshold_hu, spacing)


def kmeans_crop(hu: np.ndarray, spacing: tuple[float, float, float], k: int = 2) -> np.ndarray:
    """k-means on the crop's HU values: voxels nearer the densest cluster, central component.

    Raises
    ------
    ValueError
        If ``hu`` is not 3-D or ``k`` < 2.
    """
    from pipeline.baseline import kmeans_1d

    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"hu must be (z, y, x), got shape {hu.shape}")
    centres = kmeans_1d(hu.ravel(), k)
    cut = 0.5 * (centres[-1] + centres[-2])
    return central_component(hu > cut, spacing)
