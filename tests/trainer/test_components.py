import json

import numpy as np
import pytest
from PIL import Image

from tests.trainer.conftest import REFERENCE, REPO, SERIES_0001
from trainer.cli import main
from trainer.evaluation.components import (
    describe_components,
    render_components,
    view_box,
    view_slices,
)
from trainer.evaluation.metrics import lesion_detection

SPACING = (2.0, 0.7, 0.7)


def _scene():
    """Two predicted blobs, one on a reference lesion, plus a reference lesion missed."""
    shape = (20, 120, 120)
    labels = np.zeros(shape, np.uint16)
    ref = np.zeros(shape, bool)
    labels[8:12, 20:30, 20:30] = 1
    ref[9:13, 22:32, 22:32] = True
    labels[4:6, 80:86, 80:86] = 2
    ref[15:17, 60:64, 100:104] = True
    hu = np.full(shape, -850.0, np.float32)
    hu[labels > 0] = 30.0
    prob = np.where(labels == 1, 0.9, 0.0).astype(np.float32)
    prob[labels == 2] = 0.7
    return labels, ref, hu, prob


def test_rows_flag_true_and_false_positives_as_lesion_detection_counts_them():
    labels, ref, hu, prob = _scene()
    rows = describe_components(labels, ref, hu, prob, SPACING)
    assert [r["label"] for r in rows] == [1, 2]
    assert [r["true_positive"] for r in rows] == [True, False]
    detection = lesion_detection(labels > 0, ref)
    assert sum(not r["true_positive"] for r in rows) == detection["false_positives"]
    assert rows[0]["volume_mm3"] == pytest.approx(400 * np.prod(SPACING), abs=0.1)
    assert rows[1]["slices"] == 2
    assert rows[0]["peak_probability"] == pytest.approx(0.9)
    assert rows[1]["mean_hu"] == pytest.approx(30.0)
    assert rows[0]["centroid_mm"] is None


def test_rows_reject_arrays_of_different_shapes():
    labels, ref, hu, prob = _scene()
    with pytest.raises(ValueError, match="must have one shape"):
        describe_components(labels, ref[:-1], hu, prob, SPACING)


def test_view_box_keeps_the_field_inside_the_image():
    assert view_box((60.0, 60.0), (1.0, 1.0), (120, 120), field_mm=40) == (
        slice(40, 80), slice(40, 80))
    edge = view_box((2.0, 118.0), (1.0, 1.0), (120, 120), field_mm=40)
    assert edge == (slice(0, 40), slice(98, 120))


def test_view_slices_are_clipped_to_the_series():
    assert view_slices(10, 2.5, 40) == [8, 10, 12]
    assert view_slices(0, 2.5, 40) == [0, 0, 2]
    assert view_slices(39, 2.5, 40) == [37, 39, 39]


def test_render_writes_one_png_per_component_named_by_its_kind(tmp_path):
    labels, ref, hu, prob = _scene()
    rows = describe_components(labels, ref, hu, prob, SPACING)
    paths = render_components(rows, labels, ref, hu, SPACING, tmp_path / "views")
    assert [p.name for p in paths] == ["component_01_tp.png", "component_02_fp.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.size[0] > 200 and image.size[1] > 80


def test_components_option_needs_a_series(tmp_path, capsys):
    code = main(["evaluate", "--vois", str(tmp_path), "--components", str(tmp_path / "c"),
                 "--json", str(tmp_path / "out.json")])
    assert code == 2
    assert "--mask and --components need --series" in capsys.readouterr().err


def test_series_evaluation_lists_and_draws_every_kept_component(tmp_path):
    xmls = sorted(SERIES_0001.glob("*/*/*.xml"))
    mask = REFERENCE / "LIDC-IDRI-0001_consensus50.nii.gz"
    if not xmls or not mask.is_file():
        pytest.skip(f"LIDC-IDRI-0001 series or reference mask not available under {SERIES_0001}")
    out = tmp_path / "series.json"
    views = tmp_path / "views"
    code = main(["evaluate", "--model", str(REPO / "models" / "lungseg-unet.onnx"),
                 "--series", str(xmls[0].parent), "--mask", str(mask),
                 "--components", str(views), "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["components"]
    assert len(rows) == result["n_predicted_components"]
    assert sum(not r["true_positive"] for r in rows) == result["false_positives"]
    assert sum(r["true_positive"] for r in rows) >= result["n_detected_lesions"] == 1
    assert sorted(p.name for p in views.iterdir()) == sorted(
        f"component_{r['label']:02d}_{'tp' if r['true_positive'] else 'fp'}.png" for r in rows)
    assert all(len(r["centroid_mm"]) == 3 for r in rows)
