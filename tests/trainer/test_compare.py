"""``trainer compare``: bootstrap over patients and the not-worse rule."""

from __future__ import annotations

import json
import math

import pytest

from tests.trainer.conftest import DEMO, write_list
from trainer.evaluation.compare import bootstrap, compare_evaluations, figures, verdict


def rows(found: list[int], fps: list[int], dice: float = 0.7) -> list[dict]:
    return [{"name": f"s{k}", "patient": f"P{k}", "n_reference_lesions": 1,
             "n_detected_lesions": f, "false_positives": fp,
             "lesion_dice": [dice if f else 0.0]}
            for k, (f, fp) in enumerate(zip(found, fps, strict=True))]


def evaluation(r):
    return {"series": r, "engine": "test"}


def test_figures_pool_lesions_and_dice():
    got = figures(rows([1, 0, 1, 1], [0, 2, 0, 2]))
    assert got == {"lesion_sensitivity": 0.75, "false_positives_per_scan": 1.0,
                   "mean_lesion_dice": pytest.approx(0.525)}


def test_same_model_is_not_worse_with_zero_width_difference():
    r = rows([1, 0, 1, 1, 1, 0], [0, 1, 2, 0, 0, 1])
    report = compare_evaluations(evaluation(r), evaluation(r), n_boot=300, seed=1)
    assert report["verdict"] == "not worse"
    assert report["intervals"]["difference"]["lesion_sensitivity"] == [0.0, 0.0]
    lo, hi = report["intervals"]["old"]["lesion_sensitivity"]
    assert lo < 4 / 6 < hi


def test_missing_every_lesion_is_worse_and_fewer_false_positives_better():
    n = 12
    old = rows([1] * n, [2] * n)
    assert compare_evaluations(evaluation(old), evaluation(rows([0] * n, [2] * n)),
                               300)["verdict"] == "worse"
    assert compare_evaluations(evaluation(old), evaluation(rows([1] * n, [0] * n)),
                               300)["verdict"] == "better"
    assert compare_evaluations(evaluation(old), evaluation(rows([1] * n, [5] * n)),
                               300)["verdict"] == "worse"


def test_bootstrap_is_seeded_and_paired_by_patient():
    old, new = rows([1, 0, 1, 0, 1], [0, 1, 0, 3, 1]), rows([1, 1, 1, 0, 1], [0, 0, 0, 1, 1])
    assert bootstrap(old, new, 200, seed=3) == bootstrap(old, new, 200, seed=3)
    with pytest.raises(ValueError, match="same"):
        bootstrap(old, new[:-1], 200)


def test_undefined_figures_are_left_out():
    free = [{**r, "n_reference_lesions": 0, "n_detected_lesions": 0, "lesion_dice": []}
            for r in rows([0, 0], [0, 0])]
    decided, reasons = verdict(bootstrap(free, free, 200)["difference"])
    assert decided == "not worse" and any("undefined" in r for r in reasons)
    assert math.isnan(figures(free)["lesion_sensitivity"])


def test_compare_cli_on_the_demo_series(tmp_path, capsys):
    from engines import default_model_path
    from trainer.cli import main

    listed = write_list(tmp_path, [{"series": str(DEMO), "lesion_free": True, "patient": "A"}])
    model = str(default_model_path())
    out = tmp_path / "report.json"
    assert main(["compare", model, model, "--list", listed, "--json", str(out),
                 "--boot", "200"]) == 0
    report = json.loads(out.read_text())
    assert report["verdict"] == "not worse"
    assert report["figures"]["old"] == report["figures"]["new"]
    assert "verdict: NEW is not worse" in capsys.readouterr().out
    assert main(["compare", model, str(tmp_path / "none.onnx"), "--list", listed]) == 2
