from pathlib import Path

import numpy as np
import pytest

from benchmarks.nodules_in_context import (
    Host,
    blend_weight,
    choose_corner,
    insert,
    resample_to,
    skip_reason,
    summary_rows,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


def _ball(shape: tuple, spacing: tuple, radius_mm: float) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    dist = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
    return np.sqrt(dist) <= radius_mm


def _host(lungs: np.ndarray, hu: float = -850.0) -> Host:
    centres = np.argwhere(lungs)
    return Host(np.full(lungs.shape, hu, np.float32), (1.0, 1.0, 1.0),
                np.arange(lungs.shape[0], dtype=float), lungs, centres, "host")


def test_resampling_keeps_the_nodule_volume():
    spacing, target = (2.5, 0.7, 0.7), (1.25, 0.68, 0.68)
    mask = _ball((9, 43, 43), spacing, 8.0)
    hu = np.where(mask, 40.0, -850.0).astype(np.float32)
    hu2, mask2 = resample_to(hu, mask, spacing, target)
    assert hu2.shape == mask2.shape == (18, 44, 44)
    volume = mask.sum() * np.prod(spacing)
    assert mask2.sum() * np.prod(target) == pytest.approx(volume, rel=0.1)
    assert hu2[9, 22, 22] == pytest.approx(40.0) and hu2[~mask2].mean() < -700.0


def test_blend_weight_is_whole_at_the_nodule_and_zero_far_out():
    mask = np.zeros((3, 41, 41), dtype=bool)
    mask[1, 18:23, 18:23] = True
    w = blend_weight(mask, (1.0, 0.7, 0.7))
    assert w[18:23, 18:23].min() == 1.0 and w[20, 15] == 1.0  # 3 px margin kept whole
    assert w[:5].max() == 0.0 and w[:, :5].max() == 0.0
    assert 0.0 < w[20, 11] < 1.0  # inside the fade


def test_blend_weight_fades_in_from_the_crop_border():
    mask = np.zeros((3, 41, 41), dtype=bool)
    mask[1, 10:31, 2:31] = True  # a nodule close to the left border
    w = blend_weight(mask, (1.0, 0.7, 0.7))
    assert w[:, 0].max() == 0.0 and w[20, 1] < w[20, 3] < w[20, 10] == 1.0


def test_skip_reason_names_empty_masks_and_nodules_cut_by_the_crop_border():
    mask = np.zeros((3, 41, 41), dtype=bool)
    assert "empty" in skip_reason(mask)
    mask[1, 18:23, 0:5] = True
    assert "border" in skip_reason(mask)
    mask[:] = False
    mask[1, 18:23, 1:6] = True
    assert skip_reason(mask) is None


def test_corner_puts_the_blended_region_in_the_lung():
    lungs = np.zeros((20, 60, 60), dtype=bool)
    lungs[2:18, 30:58, 2:58] = True
    weight = np.zeros((11, 11), np.float32)
    weight[3:8, 3:8] = 1.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        z, y, x = choose_corner(_host(lungs), weight, 3, rng)
        region = lungs[z : z + 3, y : y + 11, x : x + 11][:, 3:8, 3:8]
        assert region.mean() >= 0.9


def test_corner_is_none_when_no_place_fits():
    lungs = np.zeros((20, 60, 60), dtype=bool)
    lungs[5:8, 5:9, 5:9] = True  # far smaller than the region to place
    weight = np.ones((11, 11), np.float32)
    assert choose_corner(_host(lungs), weight, 3, np.random.default_rng(0)) is None


def test_insert_keeps_the_nodule_core_and_the_far_host():
    lungs = np.ones((12, 40, 40), dtype=bool)
    host = _host(lungs)
    mask = np.zeros((2, 21, 21), dtype=bool)
    mask[:, 9:12, 9:12] = True
    hu = np.where(mask, 50.0, -700.0).astype(np.float32)
    weight = blend_weight(mask, (1.0, 1.0, 1.0))
    box = insert(host, hu, mask, weight, (5, 10, 15), margin_slices=2)
    assert box["hu"].shape == (6, 40, 40) and box["z"].tolist() == [3, 4, 5, 6, 7, 8]
    assert np.array_equal(np.argwhere(box["ref"])[0], [2, 19, 24])
    assert box["ref"].sum() == mask.sum()
    assert np.all(box["hu"][box["ref"]] == 50.0)
    assert np.all(box["hu"][:, 32:, :] == -850.0) and np.all(box["hu"][0] == -850.0)
    assert np.all(box["hu"][2:4, 10, 15:36] == -850.0)  # the crop's own border fades to 0
    assert host.hu.min() == -850.0  # the host itself is untouched


def test_summary_groups_and_means():
    rows = [
        {"texture": "solid", "diameter_mm": 5.0, "found_air": True, "found_context": False,
         "dice_air": 0.8, "dice_context": 0.0},
        {"texture": "solid", "diameter_mm": 12.0, "found_air": True, "found_context": True,
         "dice_air": 0.9, "dice_context": 0.6},
        {"texture": "non-solid", "diameter_mm": 8.0, "skipped": "no place"},
    ]
    table = {r["nodules"]: r for r in summary_rows(rows)}
    assert table["all"]["n"] == 2 and table["all"]["found_context"] == 0.5
    assert table["all"]["dice_air"] == pytest.approx(0.85)
    assert "non-solid" not in table and table["10-20mm"]["dice_context"] == 0.6


def test_real_crop_in_a_real_lung_with_the_shipped_model():
    xmls = sorted((DATA / "lidc-series" / "LIDC-IDRI-0001").glob("*/*/*.xml"))
    vois = DATA / "lidc-nodule-vois"
    if not xmls or not (vois / "image").is_dir():
        pytest.skip(f"LIDC-IDRI-0001 series or nodule crops not available under {DATA}")
    from benchmarks.nodules_in_context import load_host, run
    from engines import create_engine
    from trainer.evaluation.evaluate import select_records

    host = load_host(xmls[0].parent)
    records = [r for r in select_records(vois) if r.name in ("LIDC-IDRI-0043_R_3",
                                                               "LIDC-IDRI-0001_R_1")]
    with create_engine("onnx", REPO / "models" / "lungseg-unet.onnx", threads=1,
                       precision="fp32") as engine:
        rows = run(engine, host, records, seed=0)
    assert [r["name"] for r in rows] == ["LIDC-IDRI-0043_R_3"]  # the host's own crop is left out
    row = rows[0]
    assert "skipped" not in row, row
    assert row["found_air"] and row["dice_air"] > 0.5
    assert 0.0 <= row["dice_context"] <= 1.0 and 0.0 <= row["peak_context"] <= 1.0
