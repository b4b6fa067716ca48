"""Batch-by-batch model input and output equal the whole-region formulation."""

from __future__ import annotations

import numpy as np
import pytest

from engines.spec import ModelSpec
from pipeline.lungs import dilated_box, fast_lung_mask
from pipeline.preprocess import (
    context_stack,
    hu_to_unit,
    pad_to_multiple,
    prepare_slices,
    resample_inplane,
    restore_probabilities,
)
from pipeline.streaming import iter_model_inputs, restore_mask

from .conftest import SPACING, chest_phantom

SPEC = ModelSpec(
    name="test", version="0", architecture="none", slice_offsets_mm=(-2.0, 0.0, 2.0),
    pixel_spacing_mm=0.78, hu_window=(-1000.0, 400.0), size_multiple=16, threshold=0.5,
)


def _cases(demo_series):
    hu, _, _ = chest_phantom()
    z = np.arange(hu.shape[0]) * SPACING[0] + 0.3 * np.sin(np.arange(hu.shape[0]))
    yield hu, SPACING, z
    yield demo_series.hu, demo_series.spacing, demo_series.z_positions_mm


def _whole_region(hu, spacing, z, roi):
    """Interpolate the context slices on the native grid, then resample the whole region."""
    unit = hu_to_unit(hu[:, roi[1], roi[2]], SPEC.hu_window)
    stack = context_stack(unit, z, SPEC.slice_offsets_mm)[roi[0]]
    stack = resample_inplane(stack, (spacing[1], spacing[2]), SPEC.pixel_spacing_mm)
    batch, resampled_yx = pad_to_multiple(stack, SPEC.size_multiple)
    return batch.astype(np.float32), resampled_yx


@pytest.mark.parametrize("batch_size", [1, 5, 8])
def test_batches_equal_whole_region_input(demo_series, batch_size) -> None:
    for hu, spacing, z in _cases(demo_series):
        box = dilated_box(fast_lung_mask(hu, spacing), spacing, 5.0)
        roi = (slice(2, hu.shape[0] - 3), box[1], box[2])
        reference = prepare_slices(hu, spacing, z, SPEC, roi)
        whole, whole_yx = _whole_region(hu, spacing, z, roi)
        np.testing.assert_allclose(reference.batch, whole, rtol=0, atol=2e-6)
        assert reference.resampled_yx == whole_yx
        batches = list(iter_model_inputs(hu, spacing, z, SPEC, roi, batch_size))
        assert [b.batch.shape[0] for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
        streamed = np.concatenate([b.batch for b in batches])
        assert streamed.shape == reference.batch.shape
        # Resampling before the interpolation between slices: float rounding only.
        np.testing.assert_allclose(streamed, reference.batch, rtol=0, atol=2e-6)
        assert all(b.resampled_yx == reference.resampled_yx for b in batches)
        assert batches[0].roi[0].start == 2 and batches[-1].roi[0].stop == hu.shape[0] - 3
        assert all(b.roi[1:] == roi[1:] for b in batches)


def test_restore_mask_equals_thresholded_restore_probabilities(demo_series) -> None:
    hu, spacing, z = demo_series.hu, demo_series.spacing, demo_series.z_positions_mm
    roi = (slice(4, 12), slice(100, 400), slice(60, 430))
    model_input = next(iter_model_inputs(hu, spacing, z, SPEC, roi, 8))
    rng = np.random.default_rng(0)
    prob = rng.random((8, 1, *model_input.batch.shape[2:])).astype(np.float32) ** 8
    prob[3] = 0.2  # a slice below the threshold is not resampled, and stays empty
    reference = restore_probabilities(prob, model_input, hu.shape)[roi] > SPEC.threshold
    mask = restore_mask(prob, model_input, SPEC.threshold)
    np.testing.assert_array_equal(mask, reference)
    assert mask.any() and not mask[3].any()


def test_batch_size_must_be_positive(demo_series) -> None:
    roi = (slice(0, 2), slice(0, 8), slice(0, 8))
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_model_inputs(demo_series.hu, (2.5, 0.7, 0.7), demo_series.z_positions_mm,
                               SPEC, roi, 0))
