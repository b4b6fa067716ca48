"""Pure parts of benchmarks.whole_series: rows, pooling per lesion type, training series."""

from __future__ import annotations

import json

from benchmarks.whole_series import FOUND_DICE, by_type, series_row, training_series


def test_rows_count_a_lesion_found_only_above_the_dice_bar():
    hit = series_row("PYRADIOMICS-LUNG2", {"voxel_dice": FOUND_DICE, "false_positives": 2})
    sliver = series_row("IBSI-PHANTOM", {"voxel_dice": 0.01, "false_positives": 4})
    assert (hit["type"], hit["found"], sliver["found"]) == ("mass", 1, 0)
    nodule = series_row("PYRADIOMICS-LUNG1", {"voxel_dice": 0.43, "false_positives": 0})
    pooled = {r["type"]: r for r in by_type([hit, sliver, nodule])}
    assert pooled["mass"]["found"] == "1/2"
    assert pooled["mass"]["false positives per scan"] == 3.0
    assert pooled["nodule"]["mean Dice"] == 0.43


def test_training_series_come_from_the_sidecar(tmp_path):
    model = tmp_path / "m.onnx"
    model.with_suffix(".json").write_text(json.dumps({"extra": {"training_series": ["A"]}}))
    assert training_series(model) == ["A"]
    model.with_suffix(".json").write_text(json.dumps({"extra": {}}))
    assert training_series(model) == []
