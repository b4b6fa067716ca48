"""Model registry: register, promote (with its rules), rollback, and the worker following it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engines import default_model_path
from pipeline import registry as reg
from trainer.cli import main
from trainer.retrain.registry_ops import PromotionRefused, promote, register, rollback


def exported(tmp_path: Path, version: str, broken: bool = False) -> Path:
    """A copy of the shipped model whose sidecar names ``version`` (broken: not ONNX)."""
    folder = tmp_path / f"export-{version}"
    folder.mkdir()
    model = folder / "m.onnx"
    if broken:
        model.write_bytes(b"not an onnx model")
    else:
        shutil.copy(default_model_path(), model)
    sidecar = json.loads(default_model_path().with_suffix(".json").read_text())
    (folder / "m.json").write_text(json.dumps({**sidecar, "version": version}))
    return model


def report(tmp_path: Path, verdict: str) -> Path:
    path = tmp_path / f"report-{verdict}.json"
    fig = {"lesion_sensitivity": 1.0, "false_positives_per_scan": 0.0, "mean_lesion_dice": 0.8}
    path.write_text(json.dumps({"verdict": verdict, "reasons": ["test"],
                                "models": {"old": "a.onnx", "new": "b.onnx"},
                                "bootstrap": {"n_series": 2, "n_patients": 2},
                                "figures": {"old": fig, "new": fig}}))
    return path


@pytest.fixture
def registry(tmp_path):
    return tmp_path / "registry"


def test_register_copies_model_sidecar_card_and_report(tmp_path, registry):
    version = register(exported(tmp_path, "2.0-site"), registry, report(tmp_path, "better"))
    entry = registry / "2.0-site"
    assert version == "2.0-site" and reg.versions(registry) == ["2.0-site"]
    assert {p.name for p in entry.iterdir()} == {"lungseg-unet.onnx", "lungseg-unet.json",
                                                 "compare-report.json", "MODEL_CARD.md"}
    assert "**better**" in (entry / "MODEL_CARD.md").read_text()
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(ValueError, match="already registered"):
        register(exported(again, "2.0-site"), registry)


def test_promote_rules_and_rollback(tmp_path, registry):
    register(exported(tmp_path, "v1"), registry)
    register(exported(tmp_path, "v2"), registry, report(tmp_path, "not worse"))
    register(exported(tmp_path, "v3"), registry, report(tmp_path, "worse"))
    register(exported(tmp_path, "v4", broken=True), registry, report(tmp_path, "better"))
    assert reg.active_version(registry) is None
    with pytest.raises(PromotionRefused, match="no compare-report"):
        promote(registry, "v1")
    with pytest.raises(PromotionRefused, match="--reason"):
        promote(registry, "v1", force=True)
    assert promote(registry, "v1", force=True, reason="baseline")["action"] == "force-promote"
    assert promote(registry, "v2")["previous"] == "v1"
    with pytest.raises(PromotionRefused, match="says NEW is worse"):
        promote(registry, "v3")
    with pytest.raises(PromotionRefused, match="does not load"):
        promote(registry, "v4", force=True, reason="try")
    with pytest.raises(ValueError, match="not in the registry"):
        promote(registry, "v9")
    assert reg.active_version(registry) == "v2"
    assert rollback(registry)["version"] == "v1"
    with pytest.raises(ValueError, match="nothing to roll back"):
        rollback(registry)
    actions = [e["action"] for e in reg.history(registry)]
    assert actions == ["force-promote", "promote", "rollback"]
    assert reg.history(registry)[0]["reason"] == "baseline"


def test_cli_promote_refusal_is_one_line(tmp_path, registry, capsys):
    register(exported(tmp_path, "v3"), registry, report(tmp_path, "worse"))
    assert main(["promote", "v3", "--registry", str(registry)]) == 2
    assert "says NEW is worse" in capsys.readouterr().err
    assert main(["models", "--registry", str(registry)]) == 0
    assert json.loads(capsys.readouterr().out)["versions"] == ["v3"]


def test_worker_follows_the_active_pointer(tmp_path, registry):
    from orthanc_plugin.active_model import ActiveModel
    from pipeline.run import PipelineConfig

    register(exported(tmp_path, "v1"), registry)
    register(exported(tmp_path, "v2"), registry, report(tmp_path, "better"))
    model = ActiveModel(registry, PipelineConfig(threads=1))
    assert model.segmenter.version == "1.3.2"  # nothing active: the configured model
    same = model.segmenter
    assert model.refresh()[0] is same  # no change, no reload
    promote(registry, "v2")
    segmenter, pconfig = model.refresh()
    assert segmenter.version == "v2" and pconfig.model_path.endswith("v2/lungseg-unet.onnx")
    (registry / "v1" / "lungseg-unet.onnx").write_bytes(b"broken after promotion")
    reg.set_active(registry, "v1", "rollback")
    assert model.refresh()[0].version == "v2"  # a model that does not load is not taken
