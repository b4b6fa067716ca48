"""Model inference path with pure-function predictors (no trained model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.spec import ModelSpec
from pipeline.inference import lung_slices, predict_batched, segment_with_predictor
from pipeline.lungs import fast_lung_mask

from .conftest import SPACING, chest_phantom

SPEC = ModelSpec(
    name="test", version="0", architecture="threshold function",
    slice_offsets_mm=(-2.5, 0.0, 2.5), pixel_spacing_mm=0.7, hu_window=(-1000.0, 400.0),
    size_multiple=16, threshold=0.5,
)


def dense_predictor(batch: np.ndarray) -> np.ndarray:
    """Probability 1 where the centre channel is above -300 HU (unit value 0.5)."""
    return (batch[:, 1:2] > 0.5).astype(np.float32)


def test_predict_batched_calls_in_chunks_and_keeps_order():
    batch = np.arange(10 * 1 * 2 * 2, dtype=np.float32).reshape(10, 1, 2, 2)
    sizes = []

    def predictor(chunk):
        sizes.append(len(chunk))
        return chunk / 100.0

    out = predict_batched(batch, predictor, batch_size=4)
    assert sizes == [4, 4, 2]
    np.testing.assert_allclose(out, batch / 100.0)
    with pytest.raises(ValueError, match="batch_size"):
        predict_batched(batch, predictor, 0)
    with pytest.raises(ValueError, match="predictor returned shape"):
        predict_batched(batch, lambda c: c[:, :, :1], 4)
    with pytest.raises(ValueError, match=r"\(n, C, h, w\)"):
        predict_batched(batch[0], predictor, 4)


def test_segment_with_predictor_maps_back_to_the_native_grid():
    hu, nodule, vessel = chest_phantom()
    lungs = fast_lung_mask(hu, SPACING)
    z = np.arange(hu.shape[0]) * SPACING[0]
    seen = []

    def predictor(batch):
        seen.append(batch.shape)
        return dense_predictor(batch)

    mask = segment_with_predictor(hu, SPACING, z, SPEC, predictor, batch_size=8, lungs=lungs)
    assert mask[nodule].mean() > 0.95
    assert mask[vessel].mean() > 0.5  # the model's own output is kept; no baseline filter
    assert not mask[hu == -1000].any()  # outside the lung gate
    assert not mask[:, :, :3].any()
    n_slices = sum(s[0] for s in seen)
    with_lung = lung_slices(lungs)
    margin = 2  # the 5 mm lung gate margin is 2 slices of 2.5 mm
    assert n_slices == (with_lung[-1] - with_lung[0] + 1) + 2 * margin
    assert n_slices < hu.shape[0]
    assert all(s[2] % 16 == 0 and s[3] % 16 == 0 and s[1] == 3 for s in seen)


def test_segment_without_lung_sends_nothing_to_the_model():
    hu = np.full((12, 64, 64), -1000, dtype=np.int16)
    hu[:, 8:56, 8:56] = 40

    def predictor(batch):
        raise AssertionError("no slice should reach the model")

    mask = segment_with_predictor(hu, (2.5, 0.7, 0.7), np.arange(12) * 2.5, SPEC, predictor)
    assert not mask.any()


def test_search_region_field_finds_a_mass_against_the_chest_wall():
    from .test_lungfield import SPACING as CHEST_SPACING
    from .test_lungfield import _chest

    hu, mass = _chest()
    z = np.arange(hu.shape[0]) * CHEST_SPACING[0]
    mass_unit = (30.0 + 1000.0) / 1400.0  # the mass is 30 HU, the rest of the body 40 HU

    def mass_predictor(batch):
        return (np.abs(batch[:, 1:2] - mass_unit) < 0.003).astype(np.float32)

    found = {
        region: segment_with_predictor(hu, CHEST_SPACING, z, SPEC, mass_predictor,
                                       search_region=region)
        for region in ("lung", "field")
    }
    assert found["lung"][mass].mean() < 0.5
    assert found["field"][mass].mean() > 0.9
    assert not found["field"][~mass].sum() > 0.1 * mass.sum()
    with pytest.raises(ValueError, match="search_region"):
        segment_with_predictor(hu, CHEST_SPACING, z, SPEC, mass_predictor, search_region="body")
    with pytest.raises(ValueError, match="search_region"):
        ModelSpec(**{**SPEC.__dict__, "search_region": "body"})
