"""The decoder benchmark's pieces on a tiny network (no timing is asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.engines import model_throughput
from experiments.decoders import _has_plane, export_variant, full_resolution_share


def test_has_plane_finds_height_and_width_next_to_each_other() -> None:
    assert _has_plane([8, 3, 64, 48], 64, 48)
    assert _has_plane([8, 64, 48, 12], 64, 48)
    assert not _has_plane([8, 32, 24, 12], 64, 48)
    assert not _has_plane([8, 48, 64, 12], 64, 48)


@pytest.mark.parametrize("decoder", ["concat", "additive"])
def test_variant_exports_runs_and_profiles(tmp_path, decoder: str) -> None:
    pytest.importorskip("onnxruntime")
    path, params, gmac = export_variant(decoder, 4, tmp_path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert params > 0 and gmac > 0
    batch = np.random.default_rng(0).random((8, 3, 64, 48), dtype=np.float32)
    assert model_throughput("onnx", path, batch, 1, 8, repeats=1, precision="fp32")[0] > 0
    share = full_resolution_share(path, batch, threads=1)
    assert 0.0 < share < 1.0
