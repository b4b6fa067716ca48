"""The torch re-implementation of the model path used by the GPU check matches the shared
preprocessing on real CT (run on the CPU here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "LIDC-IDRI-0001"
SPEC = ModelSpec(name="t", version="0", architecture="t", slice_offsets_mm=(-2.0, 0.0, 2.0),
                 pixel_spacing_mm=0.78, hu_window=(-1000.0, 400.0), size_multiple=16)


@pytest.fixture(scope="module")
def series():
    if not any(DEMO.glob("*.dcm")):
        pytest.skip(f"demo series {DEMO} not present")
    from pipeline.series import load_series_dir

    return load_series_dir(DEMO)


def test_prepare_matches_prepare_slices(series) -> None:
    torch = pytest.importorskip("torch")
    from benchmarks.gpu_prep import prepare
    from pipeline.preprocess import prepare_slices

    reference = prepare_slices(series.hu, series.spacing, series.z_positions_mm, SPEC)
    hu = torch.from_numpy(np.ascontiguousarray(series.hu))
    batch, size = prepare(hu, series.z_positions_mm, series.spacing, SPEC)
    assert size == reference.resampled_yx
    assert tuple(batch.shape) == reference.batch.shape
    diff = np.abs(batch.numpy() - reference.batch)
    h, w = size
    inner = diff[:, :, 2:h - 2, 2:w - 2]  # border pixels are interpolated differently
    assert inner.mean() < 2e-3 and np.quantile(inner, 0.999) < 0.05


def test_segment_volume_thresholds_restored_probabilities(series) -> None:
    torch = pytest.importorskip("torch")
    from benchmarks.gpu_prep import segment_volume

    class HalfPlane:
        """Probability 1 on the left half of every model input, else 0."""

        spec = SPEC

        def infer_tensor(self, x):
            out = torch.zeros((x.shape[0], 1, *x.shape[2:]))
            out[..., : x.shape[3] // 2] = 1.0
            return out

    hu = series.hu[:4]
    mask = segment_volume(hu, series.z_positions_mm[:4], series.spacing, HalfPlane(),
                          torch.device("cpu"), batch_size=3)
    assert mask.shape == hu.shape and mask.dtype == bool
    cols = mask.any(axis=(0, 1))
    assert cols[:200].all() and not cols[300:].any()
