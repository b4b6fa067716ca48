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
