"""Hole filling by background labelling equals SimpleITK's BinaryFillhole (3-D, per slice, 2-D)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.morphology import fill_holes

DEMO = Path(__file__).resolve().parents[2] / "demo" / "LIDC-IDRI-0001"


def _reference(mask: np.ndarray) -> np.ndarray:
    return np.stack([
        sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(s.astype(np.uint8))))
        .astype(bool) for s in mask
    ])


def test_holes_do_not_leak_between_slices() -> None:
    mask = np.zeros((3, 12, 12), bool)
    mask[0, 2:9, 2:9] = True
    mask[0, 4:7, 4:7] = False      # a hole: filled
    mask[1, 0:6, 0:6] = True
    mask[1, 0:3, 0:3] = False      # open to the image edge: not a hole
    mask[2, 3:10, 3:10] = True
    mask[2, 5:8, 5:8] = False
    mask[2, 6, 5:10] = False       # channel to the outside: not a hole
    out = fill_holes(mask, per_slice=True)
    np.testing.assert_array_equal(out, _reference(mask))
    assert out[0, 5, 5] and not out[1, 1, 1] and not out[2, 6, 6]


def test_diagonal_gap_is_a_hole() -> None:
    """Background reaching the outside only through a corner is a hole (face connectivity)."""
    mask = np.ones((1, 7, 7), bool)
    mask[0, 0, :] = mask[0, :, 0] = False
    mask[0, 2, 2] = False          # touches the outside only diagonally, via (1, 1)
    mask[0, 1, 1] = False
    mask[0, 1, 2] = True
    mask[0, 2, 1] = True
    out = fill_holes(mask, per_slice=True)
    np.testing.assert_array_equal(out, _reference(mask))
    assert out[0, 2, 2] and not out[0, 1, 1]


def test_matches_slice_by_slice_on_real_ct() -> None:
    if not any(DEMO.glob("*.dcm")):
        pytest.skip(f"demo series {DEMO} not present")
    from pipeline.series import load_series_dir

    hu = load_series_dir(DEMO).hu
    for threshold in (-500, -320):
        mask = hu > threshold
        np.testing.assert_array_equal(fill_holes(mask, per_slice=True), _reference(mask))


def test_empty_volume() -> None:
    assert fill_holes(np.zeros((0, 4, 4), bool), per_slice=True).shape == (0, 4, 4)


def test_random_masks_match_binary_fillhole_in_3d_and_2d() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random(tuple(rng.integers(1, 10, 3))) > rng.uniform(0.2, 0.8)
        reference = sitk.BinaryFillhole(sitk.GetImageFromArray(mask.astype(np.uint8)))
        np.testing.assert_array_equal(fill_holes(mask), sitk.GetArrayFromImage(reference) > 0)
        np.testing.assert_array_equal(fill_holes(mask[0]), _reference(mask[:1])[0])


def test_rejects_other_dimensions() -> None:
    with pytest.raises(ValueError, match="2-D or 3-D"):
        fill_holes(np.zeros(4, bool))
