"""Pure parts of benchmarks.whole_series: rows, pooling per lesion type, training series."""

from __future__ import annotations

import json

from benchmarks.whole_series import FOUND_DICE, by_type, series_row, training_series


def _result(lesion_dice, voxel_dice, false_positives):
    return {"lesion_dice": lesion_dice, "voxel_dice": voxel_dice,
            "false_positives": false_positives}


def test_rows_count_a_lesion_found_only_above_the_dice_bar():
    hit = series_row("PYRADIOMICS-LUNG2", _result([FOUND_DICE], 0.1, 2))
    sliver = series_row("IBSI-PHANTOM", _result([0.01], 0.01, 4))
    assert (hit["type"], hit["found"], sliver["found"]) == ("mass", 1, 0)
    assert hit["voxel Dice"] == 0.1  # false positives lower it; "found" does not use it
    nodule = series_row("PYRADIOMICS-LUNG1", _result([0.43], 0.40, 0))
    pooled = {r["type"]: r for r in by_type([hit, sliver, nodule])}
    assert pooled["mass"]["found"] == "1/2"
    assert pooled["mass"]["false positives per scan"] == 3.0
    assert pooled["nodule"]["mean Dice"] == 0.43


def test_a_series_with_two_lesions_counts_both():
    row = series_row("LIDC-IDRI-0001", _result([0.9, 0.0], 0.6, 1))
    assert (row["lesions"], row["found"], row["Dice"]) == (2, 1, 0.45)
    assert by_type([row])[0]["found"] == "1/2"
    assert series_row("LIDC-IDRI-0001", _result([], 0.0, 3))["Dice"] == 0.0


def test_training_series_come_from_the_sidecar(tmp_path):
    model = tmp_path / "m.onnx"
    model.with_suffix(".json").write_text(json.dumps({"extra": {"training_series": ["A"]}}))
    assert training_series(model) == ["A"]
    model.with_suffix(".json").write_text(json.dumps({"extra": {}}))
    assert training_series(model) == []
