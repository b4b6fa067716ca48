"""``trainer shape-limits`` on real crops with a copy of the shipped model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engines.spec import read_spec
from trainer.cli import main

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "lungseg-unet.onnx"
TINY = str(REPO / "trainer" / "configs" / "tiny.yaml")


def _copy_model(tmp_path: Path) -> Path:
    for name in ("lungseg-unet.onnx", "lungseg-unet.json", "lungseg-unet-int8.onnx",
                 "lungseg-unet-int8.json"):
        shutil.copy(SHIPPED.parent / name, tmp_path / name)
    return tmp_path / "lungseg-unet.onnx"


def test_limits_are_derived_on_training_crops_and_written_to_both_sidecars(
        tiny_vois, tmp_path, capsys):
    model = _copy_model(tmp_path)
    common = ["shape-limits", "--model", str(model), "--vois", str(tiny_vois), "--config", TINY]
    assert main([*common, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert dry["written"] == [] and dry["components"] >= 1
    assert main([*common, "--percent", "10", "--model-version", "9.9.9"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["shape_limits"] != dry["shape_limits"]  # another percentile, other limits
    for path in (model, tmp_path / "lungseg-unet-int8.onnx"):
        spec = read_spec(path)
        assert spec.version == "9.9.9"
        assert spec.shape_limits == out["shape_limits"]
        gate = spec.extra["shape_gate"]
        assert gate["percent_per_tail"] == 10.0 and gate["components"] == out["components"]
    result = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--precision", "fp32", "--vois",
                 str(tiny_vois), "--json", str(result)]) == 0
    evaluated = json.loads(result.read_text())
    assert 0 <= evaluated["shape_gate_removes"] <= evaluated["n"]
    assert {"shape_gate_removes"} <= set(evaluated["per_nodule"][0])
    assert evaluated["canvas"] == "air"


def test_missing_model_is_a_clear_error(tiny_vois, tmp_path, capsys):
    assert main(["shape-limits", "--model", str(tmp_path / "none.onnx"),
                 "--vois", str(tiny_vois)]) == 2
    assert "none.onnx does not exist" in capsys.readouterr().err


def test_bad_percent_is_rejected_and_nothing_is_written(tiny_vois, tmp_path, capsys):
    model = _copy_model(tmp_path)
    before = model.with_suffix(".json").read_bytes()
    assert main(["shape-limits", "--model", str(model), "--vois", str(tiny_vois),
                 "--percent", "60"]) == 2
    assert "percent must be in (0, 50)" in capsys.readouterr().err
    assert model.with_suffix(".json").read_bytes() == before
