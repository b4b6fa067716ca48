"""Shape gate on synthetic components with known shapes (pure logic, no mocks needed)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.spec import ModelSpec
from pipeline.postprocess import label_lesions
from pipeline.shape import (
    ComponentShape,
    component_shapes,
    drop_implausible,
    is_implausible,
    limits_from_shapes,
)

SPACING = (1.0, 1.0, 1.0)
LIMITS = {"max_elongation": 2.5, "max_flatness": 2.1, "min_roundness": 0.55}


def _ball(shape, centre, radius):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def _scene():
    """A ball (nodule-like), a thin wide plate, a long rod and a one-slice disc."""
    shape = (40, 60, 120)
    mask = _ball(shape, (20, 15, 15), 6)
    mask[5:8, 35:58, 5:40] = True  # plate 3 x 23 x 35 voxels
    mask[30:33, 5:8, 40:110] = True  # rod 3 x 3 x 70 voxels
    mask[20] |= _ball((1, 60, 120), (0, 45, 80), 5)[0]  # disc one voxel thick
    return mask


def test_shapes_of_known_components():
    labels = label_lesions(_scene(), SPACING, min_volume_mm3=5.0)
    shapes = component_shapes(labels, SPACING)
    assert len(shapes) == 4
    by_volume = sorted(shapes.values(), key=lambda s: s.volume_mm3)
    disc, rod, ball, plate = by_volume
    assert ball.roundness > 0.85 and ball.elongation < 1.1 and ball.flatness < 1.1
    assert plate.flatness > 5.0
    assert rod.elongation > 10.0
    assert 5.0 < disc.flatness < 100.0  # one voxel thick, still finite


def test_gate_keeps_the_ball_and_renumbers_in_order():
    labels = label_lesions(_scene(), SPACING, min_volume_mm3=5.0)
    shapes = component_shapes(labels, SPACING)
    gated = drop_implausible(labels, SPACING, LIMITS)
    assert gated.dtype == labels.dtype and gated.shape == labels.shape
    kept = [k for k in sorted(shapes) if not is_implausible(shapes[k], LIMITS)]
    assert int(gated.max()) == len(kept) >= 1
    ball_label = max(shapes, key=lambda k: shapes[k].roundness)
    assert ball_label in kept
    for new, old in enumerate(kept, start=1):
        assert np.array_equal(gated == new, labels == old)
    assert np.array_equal(label_lesions(_scene(), SPACING, 5.0, shape_limits=LIMITS), gated)


def test_gate_on_real_limits_removes_plate_and_rod():
    labels = label_lesions(_scene(), SPACING, min_volume_mm3=5.0)
    shapes = component_shapes(labels, SPACING)
    removed = {k for k in shapes if is_implausible(shapes[k], LIMITS)}
    plate = max(shapes, key=lambda k: shapes[k].flatness)
    rod = max(shapes, key=lambda k: shapes[k].elongation)
    assert {plate, rod} <= removed


def test_no_limits_and_empty_maps_are_returned_unchanged():
    labels = label_lesions(_scene(), SPACING, min_volume_mm3=5.0)
    assert drop_implausible(labels, SPACING, {}) is labels
    empty = np.zeros((4, 5, 6), np.uint16)
    assert drop_implausible(empty, SPACING, LIMITS) is empty
    assert component_shapes(empty, SPACING) == {}


def test_limits_from_shapes_takes_tail_percentiles():
    shapes = [ComponentShape(1.0, 1.0 + i / 100, 1.0 + i / 50, 1.0 - i / 200)
              for i in range(101)]
    limits = limits_from_shapes(shapes, 5.0)
    assert limits == pytest.approx(
        {"max_elongation": 1.95, "max_flatness": 2.9, "min_roundness": 0.525})
    with pytest.raises(ValueError, match="percent"):
        limits_from_shapes(shapes, 50.0)
    with pytest.raises(ValueError, match="at least one"):
        limits_from_shapes([], 1.0)


def test_bad_limits_and_arrays_are_rejected():
    labels = np.zeros((3, 3, 3), np.uint16)
    with pytest.raises(ValueError, match="unknown shape_limits keys"):
        drop_implausible(labels, SPACING, {"max_roundness": 1.0})
    with pytest.raises(ValueError, match="positive numbers"):
        drop_implausible(labels, SPACING, {"max_flatness": -1.0})
    with pytest.raises(ValueError, match=r"\(z, y, x\)"):
        component_shapes(np.zeros((3, 3), np.uint16), SPACING)
    with pytest.raises(ValueError, match="spacing"):
        component_shapes(labels, (1.0, 0.0, 1.0))


def test_sidecar_round_trip_and_validation():
    base = {"format": "lungseg-model/1", "name": "m", "version": "1", "architecture": "a",
            "slice_offsets_mm": [0.0], "pixel_spacing_mm": 0.78, "hu_window": [-1000, 400]}
    assert ModelSpec.from_json(base).shape_limits == {}
    spec = ModelSpec.from_json({**base, "shape_limits": LIMITS})
    assert ModelSpec.from_json(spec.to_json()).shape_limits == LIMITS
    with pytest.raises(ValueError, match="unknown shape_limits keys"):
        ModelSpec.from_json({**base, "shape_limits": {"min_volume": 3.0}})
    with pytest.raises(ValueError, match="positive numbers"):
        ModelSpec.from_json({**base, "shape_limits": {"max_flatness": "2"}})


def test_a_cavity_does_not_change_the_shape():
    solid = _ball((30, 30, 30), (15, 15, 15), 10)
    shell = solid & ~_ball((30, 30, 30), (15, 15, 15), 6)
    shapes = component_shapes(shell.astype(np.uint16), SPACING)
    assert shapes[1] == component_shapes(solid.astype(np.uint16), SPACING)[1]
    assert shapes[1].roundness > 0.85


def _lobulated_mass(shape=(24, 90, 90), spacing=(2.5, 1.0, 1.0)):
    """A 4-5 cm mass: a ball with six lobes and a ragged surface."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    zc, yc, xc = shape[0] / 2, shape[1] / 2, shape[2] / 2
    mask = ((z - zc) * spacing[0]) ** 2 + (y - yc) ** 2 + (x - xc) ** 2 <= 18**2
    for angle in np.linspace(0, 2 * np.pi, 7)[:-1]:
        cy, cx = yc + 20 * np.sin(angle), xc + 20 * np.cos(angle)
        mask |= ((z - zc) * spacing[0]) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 10**2
    return mask & (rng.random(shape) > 0.35) | _ball(shape, (12, 45, 45), 14)


def test_gate_keeps_a_mass_less_round_than_any_nodule():
    spacing = (2.5, 1.0, 1.0)
    mask = _lobulated_mass(spacing=spacing)
    labels = label_lesions(mask, spacing, min_volume_mm3=5.0)
    shape = component_shapes(labels, spacing)[1]
    assert shape.diameter_mm >= 30.0
    limits = {**LIMITS, "min_roundness": shape.roundness + 0.05}  # nodules rounder than it
    assert not is_implausible(shape, limits)
    assert drop_implausible(labels, spacing, limits).max() == 1
    small = ComponentShape(1000.0, 1.2, 1.3, shape.roundness)  # 12 mm, same roundness
    assert is_implausible(small, limits)


@pytest.mark.parametrize(("slice_mm", "kept"), [(5.0, True), (1.0, False)])
def test_one_slice_lesion_is_kept_only_on_thick_slices(slice_mm, kept):
    spacing = (slice_mm, 0.7, 0.7)
    mask = np.zeros((5, 60, 60), dtype=bool)
    mask[2] = _ball((1, 60, 60), (0, 30, 30), 14)[0]  # 20 mm across, one slice
    labels = label_lesions(mask, spacing, min_volume_mm3=5.0)
    shape = component_shapes(labels, spacing)[1]
    assert shape.flatness > LIMITS["max_flatness"]
    assert shape.thickness_limited is (slice_mm >= 3.0)
    assert bool(drop_implausible(labels, spacing, LIMITS).max() == 1) is kept
