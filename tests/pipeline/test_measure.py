"""Measurements, geometry and connected components on synthetic shapes of known size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.geometry2d import convex_hull, outline, principal_axes
from pipeline.measure import measure_lesions
from pipeline.postprocess import label_lesions

from .conftest import ball

SPACING = (1.0, 0.7, 0.7)


def test_sphere_volume_and_diameters():
    shape = (40, 64, 64)
    radius = 10.0
    mask = ball(shape, SPACING, (20.0, 32 * 0.7, 32 * 0.7), radius)
    hu = np.where(mask, 35, -850).astype(np.int16)
    (lesion,) = measure_lesions(mask.astype(np.uint16), hu, SPACING)
    assert lesion.volume_mm3 == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.03)
    assert lesion.long_axis_mm == pytest.approx(2 * radius, abs=1.0)
    assert lesion.short_axis_mm == pytest.approx(2 * radius, abs=1.0)
    areas = mask.sum(axis=(1, 2))
    assert areas[lesion.key_slice] == areas.max()
    assert lesion.key_slice in (19, 20, 21)
    assert lesion.centroid_zyx == pytest.approx([20.0, 32.0, 32.0], abs=0.1)
    assert lesion.mean_hu == 35 and lesion.min_hu == 35 and lesion.max_hu == 35
    assert lesion.necrotic_fraction == 1.0
    assert lesion.cavitary_fraction == 0.0
    (c0, r0), (c1, r1) = lesion.long_axis_points
    length = math.hypot((c1 - c0) * 0.7, (r1 - r0) * 0.7)
    assert length == pytest.approx(lesion.long_axis_mm, abs=1e-6)


def test_hollow_sphere_cavitary_fraction():
    shape = (40, 64, 64)
    centre = (20.0, 32 * 0.7, 32 * 0.7)
    outer = ball(shape, SPACING, centre, 10.0)
    inner = ball(shape, SPACING, centre, 6.0)
    wall = outer & ~inner
    hu = np.full(shape, -850, dtype=np.int16)
    hu[wall] = 60
    hu[inner] = -950
    (lesion,) = measure_lesions(wall.astype(np.uint16), hu, SPACING)
    assert lesion.cavitary_fraction == pytest.approx(inner.sum() / outer.sum(), rel=0.02)
    assert lesion.cavitary_fraction == pytest.approx((6 / 10) ** 3, abs=0.03)
    assert lesion.volume_mm3 == pytest.approx(wall.sum() * np.prod(SPACING))
    assert lesion.necrotic_fraction == 0.0


def test_rectangle_axes_outline_and_necrotic_fraction():
    mask = np.zeros((3, 40, 60), dtype=bool)
    mask[1, 10:20, 5:45] = True
    hu = np.full(mask.shape, -800, dtype=np.int16)
    hu[1, 10:20, 5:25] = 20
    hu[1, 10:20, 25:45] = 100
    (lesion,) = measure_lesions(mask.astype(np.uint16), hu, (2.0, 1.0, 1.0))
    assert lesion.long_axis_mm == pytest.approx(math.hypot(40, 10), abs=0.5)
    assert lesion.necrotic_fraction == pytest.approx(0.5)
    assert lesion.key_slice == 1
    contour = np.array(lesion.contour)
    assert contour[0].tolist() == contour[-1].tolist()
    assert sorted(map(tuple, contour[:-1].tolist())) == [(5, 10), (5, 20), (45, 10), (45, 20)]


def test_axes_of_an_axis_aligned_bar_are_exact():
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:8, 2:22] = True
    axes = principal_axes(mask, (1.0, 1.0))
    assert axes.long_mm == pytest.approx(math.hypot(20, 3), abs=0.6)
    assert axes.short_mm <= 3.5
    with pytest.raises(ValueError, match="non-empty 2-D"):
        principal_axes(np.zeros((4, 4), bool), (1.0, 1.0))


def test_outline_follows_the_largest_component():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 2:5] = True
    mask[8, 8] = True
    poly = outline(mask)
    assert sorted(map(tuple, poly[:-1].tolist())) == [(2, 2), (2, 5), (5, 2), (5, 5)]
    with pytest.raises(ValueError):
        outline(np.zeros((3, 3), bool))


def test_convex_hull_of_a_square_with_inner_points():
    pts = np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1], [1, 0.5]])
    hull = convex_hull(pts)
    assert sorted(map(tuple, hull.tolist())) == [(0, 0), (0, 2), (2, 0), (2, 2)]


def test_label_lesions_sorts_by_size_and_drops_small():
    mask = np.zeros((10, 30, 30), dtype=bool)
    mask[2:6, 2:6, 2:6] = True  # 64 voxels
    mask[2:8, 15:21, 15:21] = True  # 216 voxels
    mask[9, 28, 28] = True  # 1 voxel
    labels = label_lesions(mask, (1.0, 1.0, 1.0), min_volume_mm3=10.0)
    assert labels.dtype == np.uint16
    assert labels.max() == 2
    assert (labels == 1).sum() == 216 and (labels == 2).sum() == 64
    assert labels[9, 28, 28] == 0
    assert not label_lesions(np.zeros((3, 3, 3), bool), (1, 1, 1)).any()
    with pytest.raises(ValueError, match="spacing"):
        label_lesions(mask, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="min_volume_mm3"):
        label_lesions(mask, (1.0, 1.0, 1.0), -1)


def test_measure_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal 3-D shapes"):
        measure_lesions(np.zeros((2, 3, 3), np.uint16), np.zeros((2, 3, 4)), (1, 1, 1))
    assert measure_lesions(np.zeros((2, 3, 3), np.uint16), np.zeros((2, 3, 3)), (1, 1, 1)) == []


def test_keep_mostly_inside_drops_components_outside_the_region():
    from pipeline.postprocess import keep_mostly_inside

    region = np.zeros((5, 20, 20), dtype=bool)
    region[:, :, :10] = True
    mask = np.zeros_like(region)
    mask[1:4, 2:6, 2:6] = True  # fully inside
    mask[1:4, 12:16, 8:14] = True  # 2 of 6 columns inside
    out = keep_mostly_inside(mask, region, 0.5)
    assert out[1:4, 2:6, 2:6].all()
    assert not out[1:4, 12:16, 8:14].any()
    assert keep_mostly_inside(mask, region, 0.3)[1:4, 12:16, 8:14].all()
    with pytest.raises(ValueError, match="same shape"):
        keep_mostly_inside(mask, region[1:], 0.5)
    with pytest.raises(ValueError, match="min_fraction"):
        keep_mostly_inside(mask, region, 1.5)


@pytest.mark.slow
def test_measurements_of_a_necrotic_mass_with_air_on_ibsi_phantom():
    """The IBSI phantom's 10 cm cancer (reference contour): size, necrosis and air."""
    from benchmarks.common import series_dir
    from pipeline.measure import measure_lesions
    from pipeline.series import load_series_dir

    from .conftest import SHARED

    archive = SHARED / "whole-series" / "IBSI-PHANTOM.tar.xz"
    mask_path = SHARED / "whole-series" / "IBSI-PHANTOM_lesions.nii.gz"
    if not archive.is_file():
        pytest.skip(f"IBSI-PHANTOM not present under {archive.parent}")
    from trainer.data.datasets import read_reference_mask

    series = load_series_dir(series_dir(archive))
    mask = read_reference_mask(mask_path, series.z_positions_mm, series.hu.shape)
    (lesion,) = measure_lesions(mask.astype(np.int32), series.hu, series.spacing)
    assert 350e3 < lesion.volume_mm3 < 365e3  # the phantom's GTV: 359 cm3
    assert 95.0 < lesion.long_axis_mm < 115.0 and 85.0 < lesion.short_axis_mm <= lesion.long_axis_mm
    assert 0.15 < lesion.necrotic_fraction < 0.40  # fluid-like centre
    assert 0.03 < lesion.cavitary_fraction < 0.15  # aerated tissue at its back
    assert -100.0 < lesion.mean_hu < 20.0
