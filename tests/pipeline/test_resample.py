"""In-plane resampling against SimpleITK's linear and nearest-neighbour ``Resample``."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.preprocess import resample_inplane


def _sitk_resample(
    stack: np.ndarray, spacing_yx: tuple[float, float], shape_yx: tuple[int, int], interp: int
) -> np.ndarray:
    """Reference: one 2-D SimpleITK resample per slice, same physical extent."""
    h, w = stack.shape[-2:]
    out_spacing = (w * spacing_yx[1] / shape_yx[1], h * spacing_yx[0] / shape_yx[0])
    origin = (0.5 * (out_spacing[0] - spacing_yx[1]), 0.5 * (out_spacing[1] - spacing_yx[0]))
    slices = []
    for plane in stack:
        img = sitk.GetImageFromArray(plane)
        img.SetSpacing((spacing_yx[1], spacing_yx[0]))
        res = sitk.Resample(
            img, (shape_yx[1], shape_yx[0]), sitk.Transform(), interp, origin, out_spacing,
            img.GetDirection(), 0.0, img.GetPixelID(),
        )
        slices.append(sitk.GetArrayFromImage(res))
    return np.stack(slices)


@pytest.mark.parametrize(
    ("shape", "spacing", "target"),
    [
        ((3, 41, 57), (0.68, 0.68), 0.78),
        ((2, 37, 30), (0.9, 0.6), 0.78),
        ((1, 16, 16), (0.5, 0.5), 1.1),
    ],
)
def test_linear_matches_sitk(shape: tuple, spacing: tuple, target: float) -> None:
    stack = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    out = resample_inplane(stack, spacing, target)
    back = resample_inplane(out, (1.0, 1.0), 1.0, shape_yx=shape[1:])
    assert out.dtype == np.float32
    np.testing.assert_allclose(
        out, _sitk_resample(stack, spacing, out.shape[1:], sitk.sitkLinear), atol=1e-5
    )
    np.testing.assert_allclose(
        back, _sitk_resample(out, (1.0, 1.0), shape[1:], sitk.sitkLinear), atol=1e-5
    )


def test_nearest_keeps_labels() -> None:
    labels = np.random.default_rng(2).integers(0, 4, size=(2, 23, 31)).astype(np.uint8)
    out = resample_inplane(labels, (0.7, 0.7), 0.78, linear=False)
    expected = _sitk_resample(labels, (0.7, 0.7), out.shape[1:], sitk.sitkNearestNeighbor)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_same_shape_returns_float_copy() -> None:
    stack = np.arange(12, dtype=np.int16).reshape(1, 3, 4)
    out = resample_inplane(stack, (0.78, 0.78), 0.78)
    assert out.dtype == np.float32 and not np.shares_memory(out, stack)
    np.testing.assert_array_equal(out, stack)
