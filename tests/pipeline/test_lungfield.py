"""The lung field (search region): hull filling on known shapes, a synthetic chest with a
juxtapleural mass, a field of view that cuts a lung, and the annotated real series."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import series_dir
from benchmarks.lung_field import annotated_series, coverage
from pipeline.lungfield import convex_fill, lung_field
from pipeline.lungs import fast_lung_mask
from pipeline.series import load_series_dir

from .conftest import SHARED

SPACING = (2.5, 0.8, 0.8)


def test_convex_fill_of_three_points_is_the_triangle():
    mask = np.zeros((8, 8), dtype=bool)
    mask[1, 1] = mask[6, 6] = mask[1, 6] = True
    filled = convex_fill(mask)
    expected = np.triu(np.ones((6, 6), dtype=bool))
    assert (filled[1:7, 1:7] == expected).all()
    assert filled.sum() == expected.sum()


def test_convex_fill_fills_a_crescent_and_keeps_a_convex_shape():
    y, x = np.ogrid[:64, :64]
    disc = (y - 32) ** 2 + (x - 32) ** 2 <= 20**2
    bite = (y - 32) ** 2 + (x - 52) ** 2 <= 12**2
    filled = convex_fill(disc & ~bite)
    assert filled[32, 45] and not (disc & ~bite)[32, 45]
    assert (convex_fill(disc) == disc).all()
    with pytest.raises(ValueError, match="2-D"):
        convex_fill(np.zeros((2, 2, 2), dtype=bool))


def _chest(shape=(24, 200, 260)):
    """Soft-tissue body, two lungs, a 3 cm mass against the right lung's posterior wall."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((y - 100) / 90.0) ** 2 + ((x - 130) / 125.0) ** 2 <= 1
    hu[np.broadcast_to(body, shape)] = 40.0
    for centre in (75, 185):
        lung = ((y - 100) / 70.0) ** 2 + ((x - centre) / 45.0) ** 2 <= 1
        hu[np.broadcast_to(lung, shape)] = -850.0
    mass = (((z - 12) * SPACING[0]) ** 2 + ((y - 152) * SPACING[1]) ** 2
            + ((x - 75) * SPACING[2]) ** 2) <= 15.0**2
    hu[mass] = 30.0
    return hu, mass


def test_field_holds_a_mass_against_the_chest_wall_and_not_the_mediastinum():
    hu, mass = _chest()
    lungs = fast_lung_mask(hu, SPACING)
    field = lung_field(lungs, SPACING)
    assert (lungs & mass).sum() / mass.sum() < 0.5
    assert (field & mass).sum() / mass.sum() >= 0.95
    assert not field[:, 100, 130].any()  # the mediastinum between the lungs
    assert not field[:, 100, 5].any()  # outside the body


def test_lung_cut_by_the_field_of_view_is_found():
    hu, mass = _chest()
    cropped, cropped_mass = hu[:, :, :110], mass[:, :, :110]  # the right lung cut open
    lungs = fast_lung_mask(cropped, SPACING)
    lung_voxels = (cropped < -500).sum() - (cropped[:, :, :2] < -500).sum()
    assert lungs.sum() > 0.5 * lung_voxels
    field = lung_field(lungs, SPACING)
    assert (field & cropped_mass).sum() / cropped_mass.sum() >= 0.9


def test_field_rejects_bad_input():
    with pytest.raises(ValueError, match="z_reach_mm"):
        lung_field(np.zeros((2, 4, 4), dtype=bool), SPACING, z_reach_mm=-1.0)
    with pytest.raises(ValueError, match="volume"):
        lung_field(np.zeros((4, 4), dtype=bool), SPACING)


MINIMUM_SHARE = {"IBSI-PHANTOM": 0.85}
"""IBSI-PHANTOM's field of view is cropped to 20 cm around a 10 cm tumour that fills the
back of the chest: 0.885 of it lies in the field
(docs/experiments/2026-12-02-search-region.md)."""


@pytest.mark.slow
def test_field_holds_the_lesions_of_the_annotated_series():
    if not SHARED.is_dir():
        pytest.skip(f"shared data not present under {SHARED}")
    from trainer.data.datasets import read_reference_mask

    for case, source, mask_path in annotated_series(SHARED):
        series = load_series_dir(series_dir(source))
        spacing = tuple(float(v) for v in series.spacing)
        lesion = read_reference_mask(mask_path, series.z_positions_mm, series.hu.shape)
        row = coverage(series.hu, spacing, lesion)
        assert row["in field+5mm"] >= MINIMUM_SHARE.get(case, 0.95), (case, row)
        assert row["size field+5mm"] <= 2.6, (case, row)
