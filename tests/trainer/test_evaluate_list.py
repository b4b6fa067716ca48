"""``trainer evaluate --list``: whole series of a series list, pooled (the product path)."""

import json

import numpy as np
import pytest

from tests.trainer.conftest import DEMO, TINY, write_list, write_mask
from trainer.cli import main
from trainer.evaluation.evaluate_list import pool


def test_pool_sums_lesions_and_averages_false_positives():
    rows = [{"n_reference_lesions": 2, "n_detected_lesions": 1, "false_positives": 3,
             "lesion_free": False, "lesion_dice": [0.8, 0.0]},
            {"n_reference_lesions": 0, "n_detected_lesions": 0, "false_positives": 0,
             "lesion_free": True},
            {"n_reference_lesions": 1, "n_detected_lesions": 1, "false_positives": 0,
             "lesion_free": False, "lesion_dice": [0.7]}]
    assert pool(rows) == {"n_series": 3, "n_lesion_free_series": 1, "n_reference_lesions": 3,
                          "n_detected_lesions": 2, "lesion_sensitivity": 2 / 3,
                          "false_positives_per_scan": 1.0, "max_false_positives_per_scan": 3,
                          "mean_lesion_dice": pytest.approx(0.5)}
    with pytest.raises(ValueError, match="no series"):
        pool([])


@pytest.mark.slow
def test_the_demo_nodule_is_found_and_counts_against_a_lesion_free_claim(demo_series,
                                                                        tmp_path, capsys):
    """The shipped model on the demo series, listed twice: once with a lesion mask on its
    nodule (found, no false positive) and once, wrongly, as lesion-free (the same nodule is
    then the one false positive): 1/1 found, 0.5 false positives per scan."""
    z, y, x = np.ogrid[: demo_series.hu.shape[0], :512, :512]
    nodule = (z - 14) ** 2 * 9 + (y - 365) ** 2 + (x - 315) ** 2 <= 8**2
    write_mask(demo_series, nodule, tmp_path / "nodule.nii.gz")
    listed = write_list(tmp_path, [{"series": str(DEMO), "lesions": "nodule.nii.gz"},
                                   {"series": str(DEMO), "lesion_free": True}])
    out = tmp_path / "out.json"
    assert main(["evaluate", "--list", listed, "--threads", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["n_detected_lesions"], r["false_positives"]) for r in result["series"]] == [
        (1, 0), (0, 1)]
    assert result["pooled"]["lesion_sensitivity"] == 1.0
    assert result["pooled"]["false_positives_per_scan"] == 0.5
    assert '"false_positives_per_scan": 0.5' in capsys.readouterr().out
    assert main(["evaluate", "--list", listed, "--mask", "m.nii.gz", "--json", str(out)]) == 2


@pytest.mark.slow
def test_a_sites_own_series_end_to_end(demo_vois, tmp_path):
    """Series list -> crops -> cache with the listed lungs -> fine-tuning on them (air+lung
    canvas, tiny network) -> export -> evaluate --list: the whole own-data path runs."""
    vois, listed = demo_vois
    cache, run = tmp_path / "cache.npz", tmp_path / "ft"
    common = ["--config", TINY, "--set", f"vois_dir={vois}", "--set", f"cache={cache}"]
    assert main(["cache", *common, "--set", f"negative_list={listed}"]) == 0
    assert main(["finetune", *common, "--set", "crop_canvas=air+lung",
                 "--set", f"out_dir={run}"]) == 0
    model = tmp_path / "own.onnx"
    assert main(["export", "--checkpoint", str(run / "final.pt"), "--out", str(model),
                 "--no-pt2"]) == 0
    out = tmp_path / "out.json"
    assert main(["evaluate", "--list", listed, "--model", str(model), "--precision", "fp32",
                 "--threads", "1", "--json", str(out)]) == 0
    pooled = json.loads(out.read_text())["pooled"]
    assert pooled["n_series"] == 3 and pooled["n_reference_lesions"] == 3
