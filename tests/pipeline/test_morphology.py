"""NumPy ball morphology equals SimpleITK's filters, and the box dilation helpers agree."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.lungs import dilate, dilated_box, dilated_slices, gate
from pipeline.morphology import (
    ball_rows,
    binary_closing,
    binary_opening,
    dilate_axis,
    dilate_ball,
    erode_ball,
)
from pipeline.preprocess import bounding_box

RADII = [(1, 1, 1), (2, 2, 1), (3, 2, 4), (0, 2, 1)]
FILTERS = [
    (dilate_ball, sitk.BinaryDilate),
    (erode_ball, sitk.BinaryErode),
    (binary_opening, sitk.BinaryMorphologicalOpening),
    (binary_closing, sitk.BinaryMorphologicalClosing),
]


def _blobs(seed: int, shape=(14, 23, 37)) -> np.ndarray:
    """Random blobs that touch every face of the array."""
    rng = np.random.default_rng(seed)
    noise = rng.random(shape)
    img = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(noise), 1.0)
    return sitk.GetArrayFromImage(img) > 0.5


def _itk(fn, mask: np.ndarray, radius) -> np.ndarray:
    img = fn(sitk.GetImageFromArray(mask.astype(np.uint8)), list(radius), sitk.sitkBall)
    return sitk.GetArrayFromImage(img).astype(bool)


@pytest.mark.parametrize("radius", RADII)
@pytest.mark.parametrize(("ours", "theirs"), FILTERS)
def test_equals_simpleitk(ours, theirs, radius) -> None:
    for seed in range(3):
        mask = _blobs(seed)
        assert mask.any() and not mask.all()
        np.testing.assert_array_equal(ours(mask, radius), _itk(theirs, mask, radius))


def test_ball_rows_of_radius_one() -> None:
    rows = ball_rows((1, 1, 1))
    assert sum(2 * w + 1 for _, _, w in rows) == 19  # 3x3x3 without the 8 corners
    with pytest.raises(ValueError, match="radius"):
        ball_rows((1, -1, 1))


def test_dilate_axis_reaches_across_the_array_ends() -> None:
    flags = np.zeros(12, bool)
    flags[-1] = True
    for radius in range(8):
        expected = np.zeros(12, bool)
        expected[max(0, 11 - radius):] = True
        np.testing.assert_array_equal(dilate_axis(flags, 0, radius), expected)


def _box_dilate_itk(mask: np.ndarray, spacing, mm: float) -> np.ndarray:
    radius = [int(round(mm / s)) for s in (spacing[2], spacing[1], spacing[0])]
    img = sitk.BinaryDilate(sitk.GetImageFromArray(mask.astype(np.uint8)), radius, sitk.sitkBox)
    return sitk.GetArrayFromImage(img).astype(bool)


@pytest.mark.parametrize("spacing", [(2.5, 0.7, 0.7), (1.0, 1.3, 0.9)])
def test_dilate_and_its_shortcuts(spacing) -> None:
    lungs = _blobs(7, shape=(10, 40, 50)) & _blobs(8, shape=(10, 40, 50))
    full = _box_dilate_itk(lungs, spacing, 5.0)
    np.testing.assert_array_equal(dilate(lungs, spacing, 5.0), full)
    assert dilated_box(lungs, spacing, 5.0) == bounding_box(full, (0, 0, 0))
    np.testing.assert_array_equal(
        dilated_slices(lungs, spacing, 5.0), np.flatnonzero(full.any(axis=(1, 2)))
    )
    candidates = np.zeros(lungs.shape, bool)
    candidates[2:5, 3:9, 40:50] = True
    candidates[8, 30, 1] = True
    np.testing.assert_array_equal(gate(candidates, lungs, spacing, 5.0), candidates & full)
    assert not gate(np.zeros_like(lungs), lungs, spacing, 5.0).any()
