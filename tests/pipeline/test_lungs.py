"""Lung mask: the NumPy morphology path equals the SimpleITK one; the coarse mask agrees."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from pipeline.lungs import fast_lung_mask
from pipeline.preprocess import (
    LUNG_AIR_HU,
    _largest_components,
    _radius,
    body_mask,
    lung_mask,
    to_image,
)


def _sitk_lung_mask(hu: np.ndarray, spacing, closing_mm: float = 6.0) -> np.ndarray:
    """The lung mask as it was computed before: SimpleITK filters on the whole volume."""
    body = body_mask(hu, spacing)
    air = (hu < LUNG_AIR_HU) & body
    img = sitk.BinaryMorphologicalOpening(to_image(air.astype(np.uint8), spacing),
                                          list(_radius(spacing, 1.0)))
    lungs = _largest_components(img, keep=2, min_fraction=0.1)
    lungs = sitk.BinaryMorphologicalClosing(lungs, list(_radius(spacing, closing_mm)))
    filled = [sitk.BinaryFillhole(lungs[:, :, k]) for k in range(lungs.GetSize()[2])]
    return np.stack([sitk.GetArrayFromImage(f) > 0 for f in filled]) & body


def test_lung_mask_equals_the_simpleitk_pipeline(demo_series) -> None:
    hu, spacing = demo_series.hu, demo_series.spacing
    coarse = np.ascontiguousarray(hu[:, ::2, ::2])
    coarse_spacing = (spacing[0], spacing[1] * 2, spacing[2] * 2)
    expected = _sitk_lung_mask(coarse, coarse_spacing)
    assert expected.sum() > 10_000
    np.testing.assert_array_equal(lung_mask(coarse, coarse_spacing), expected)


def test_coarse_lung_mask_agrees_with_full_resolution(demo_series) -> None:
    """The 2x coarser grid changes the mask only along its border (Dice >= 0.98)."""
    hu, spacing = demo_series.hu, demo_series.spacing
    full = lung_mask(hu, spacing)
    fast = fast_lung_mask(hu, spacing)
    assert fast.shape == full.shape and fast.dtype == bool
    dice = 2 * (full & fast).sum() / (full.sum() + fast.sum())
    assert dice >= 0.98
    assert abs(int(fast.sum()) - int(full.sum())) <= 0.015 * full.sum()
    np.testing.assert_array_equal(fast[:, ::2, ::2], fast[:, 1::2, 1::2])  # 2x2 blocks


def test_empty_air_gives_an_empty_mask() -> None:
    hu = np.full((6, 32, 32), 40, dtype=np.int16)
    assert not lung_mask(hu, (2.5, 0.7, 0.7)).any()
