"""The classic baselines on a synthetic chest and on real CT."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.baseline import BaselineParams, kmeans_1d, kmeans_segment, threshold_segment
from pipeline.lungs import fast_lung_mask

from .conftest import SPACING, chest_phantom


@pytest.fixture(scope="module")
def phantom():
    hu, nodule, vessel = chest_phantom()
    return hu, nodule, vessel, fast_lung_mask(hu, SPACING)


@pytest.mark.parametrize("segment", [threshold_segment, kmeans_segment])
def test_baselines_find_the_nodule_and_drop_the_vessel(phantom, segment):
    hu, nodule, vessel, lungs = phantom
    mask = segment(hu, SPACING, lungs=lungs)
    dice = 2 * (mask & nodule).sum() / (mask.sum() + nodule.sum())
    assert dice > 0.9
    assert not (mask & vessel).any()


def test_lung_mask_contains_the_nodule_and_excludes_the_body(phantom):
    hu, nodule, _, lungs = phantom
    assert lungs[nodule].all()
    assert not lungs[hu == -1000].any()
    assert not lungs[:, 64, 8].any()


def test_nothing_dense_in_the_lungs_gives_an_empty_mask():
    hu, nodule, vessel = chest_phantom()
    hu[nodule | vessel] = -850
    assert not threshold_segment(hu, SPACING).any()
    assert not kmeans_segment(hu, SPACING, BaselineParams(clusters=2)).any()


def test_candidates_above_the_size_limit_are_dropped(phantom):
    hu, nodule, _, lungs = phantom
    assert threshold_segment(hu, SPACING, BaselineParams(max_diameter_mm=13.0), lungs).any()
    assert not threshold_segment(hu, SPACING, BaselineParams(max_diameter_mm=11.0), lungs).any()


def test_kmeans_1d_recovers_known_centres():
    rng = np.random.default_rng(1)
    values = np.concatenate([
        rng.normal(-850, 30, 20000), rng.normal(-500, 30, 3000), rng.normal(40, 20, 500),
    ])
    centres = kmeans_1d(values, 3)
    assert centres == pytest.approx([-850, -500, 40], abs=15)
    with pytest.raises(ValueError, match="k must be >= 2"):
        kmeans_1d(values, 1)
    with pytest.raises(ValueError, match="empty"):
        kmeans_1d(np.array([]), 2)


def test_params_and_inputs_are_validated(phantom):
    with pytest.raises(ValueError, match="clusters must be 2 or 3"):
        BaselineParams(clusters=5)
    with pytest.raises(ValueError, match="opening_mm"):
        BaselineParams(opening_mm=-1)
    hu = phantom[0]
    with pytest.raises(ValueError, match="lungs shape"):
        threshold_segment(hu, SPACING, lungs=np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="volume"):
        threshold_segment(hu[0], SPACING)


def test_threshold_baseline_finds_the_demo_nodule(demo_result, demo_series):
    # The LIDC-IDRI-0001 nodule is centred near column 315, row 365 of InstanceNumber 44.
    k = [int(ds.InstanceNumber) for ds in demo_series.datasets].index(44)
    label = int(demo_result.mask[k, 365, 315])
    assert label > 0
    lesion = demo_result.lesions[label - 1]
    assert 15.0 < lesion.long_axis_mm < 35.0
    assert -200 < lesion.mean_hu < 150


def test_dilate_grows_by_the_radius_in_each_axis():
    from pipeline.lungs import dilate

    mask = np.zeros((9, 21, 21), dtype=bool)
    mask[4, 10, 10] = True
    out = dilate(mask, (2.0, 1.0, 1.0), 3.0)
    zs, ys, xs = np.nonzero(out)
    assert (zs.min(), zs.max()) == (2, 6)  # 3 mm / 2 mm rounds to 2 slices
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (7, 13, 7, 13)
    assert out.sum() == 5 * 7 * 7
    assert dilate(mask, (2.0, 1.0, 1.0), 0.0).sum() == 1
    with pytest.raises(ValueError, match="mm must be >= 0"):
        dilate(mask, (2.0, 1.0, 1.0), -1.0)
