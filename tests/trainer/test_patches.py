"""Patch sampling from a small synthetic cache: crop weighting by texture."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from trainer.config import build_config
from trainer.data.cache import _save
from trainer.data.patches import PatchCache, PatchSampler, lesion_weight


def _cache(tmp_path, textures):
    imgs, labs, meta = [], [], []
    for i, texture in enumerate(textures):
        img = np.full((2, 3, 8, 8), i + 1, np.uint8)
        imgs.append(img)
        labs.append(np.ones((2, 8, 8), np.uint8))
        meta.append({"name": f"c{i}", "patient": f"p{i}", "texture": texture,
                     "diameter_mm": 5.0, "negative": False})
    path = _save(imgs, labs, meta, build_config({}), tmp_path / "cache.npz")
    return PatchCache(path)


def _nonsolid_share(cache, weight, n=3000):
    sampler = PatchSampler(cache, cache.entries(), patch=8, seed=0, subsolid_weight=weight)
    x, _ = sampler.sample(n)
    crop_id = np.round(x[:, 0].max(axis=(1, 2)) * 255.0)
    return float(np.mean(crop_id == 2))


def test_subsolid_weight_draws_ground_glass_more_often(tmp_path):
    cache = _cache(tmp_path, ["solid", "non-solid", "solid", "solid"])
    assert _nonsolid_share(cache, 1.0) == pytest.approx(0.25, abs=0.03)
    assert _nonsolid_share(cache, 3.0) == pytest.approx(0.5, abs=0.03)


def test_subsolid_weight_must_be_positive():
    with pytest.raises(ConfigError, match="subsolid_weight"):
        build_config({"subsolid_weight": 0.0})


def _cache_with_small_crop(tmp_path):
    img = np.zeros((1, 3, 6, 5), np.uint8)
    img[0, :] = np.arange(1, 31, dtype=np.uint8).reshape(6, 5)  # distinct values, no zero
    lab = np.zeros((1, 6, 5), np.uint8)
    lab[0, 2:4, 1:3] = 1
    meta = [{"name": "c0", "patient": "p0", "texture": "solid", "diameter_mm": 3.0,
             "negative": False}]
    return PatchCache(_save([img], [lab], meta, build_config({}), tmp_path / "cache.npz"))


def test_unknown_canvas_is_rejected(tmp_path):
    cache = _cache_with_small_crop(tmp_path)
    with pytest.raises(ValueError, match="canvas"):
        PatchSampler(cache, cache.entries(), patch=16, seed=0, canvas="noise")
    for retired in ("noise", "reflect", "lung"):
        with pytest.raises(ConfigError, match="crop_canvas"):
            build_config({"crop_canvas": retired})


def _cache_with_lung(tmp_path):
    """One crop (values 1-30, lesion 2 x 2) and one lung slice of value 60, centres allowed
    in its middle only; plus a body slice (value 50) that must never serve as lung."""
    img = np.zeros((1, 3, 6, 5), np.uint8)
    img[0, :] = np.arange(1, 31, dtype=np.uint8).reshape(6, 5)
    lab = np.zeros((1, 6, 5), np.uint8)
    lab[0, 2:4, 1:3] = 1
    lung, lung_ok = np.full((1, 3, 40, 40), 60, np.uint8), np.zeros((1, 40, 40), np.uint8)
    lung_ok[0, 18:22, 18:22] = 1
    lung[0, :, 18, 18] = 200  # an allowed centre on dense tissue (wall, hilum)
    body, body_ok = np.full((1, 3, 40, 40), 50, np.uint8), np.ones((1, 40, 40), np.uint8)
    meta = [{"name": "c0", "patient": "p0", "texture": "solid", "diameter_mm": 3.0,
             "negative": False},
            {"name": "body", "patient": "body", "texture": "none", "diameter_mm": 0.0,
             "negative": True, "lung": False},
            {"name": "lung", "patient": "lung", "texture": "none", "diameter_mm": 0.0,
             "negative": True, "lung": True}]
    path = _save([img, body, lung], [lab, body_ok, lung_ok], meta, build_config({}),
                 tmp_path / "cache.npz")
    return PatchCache(path)


def test_lung_canvas_blends_the_lesion_into_lesion_free_lung(tmp_path):
    cache = _cache_with_lung(tmp_path)
    blended = 0
    for seed in range(40):  # the same seed places the crop at the same offset in both
        xa, ya = PatchSampler(cache, cache.entries(), patch=32, seed=seed)._crop_patch(0)
        lung = PatchSampler(cache, cache.entries(), patch=32, seed=seed, canvas="air+lung")
        xl, yl = lung._crop_patch(0)
        assert np.array_equal(yl, ya)
        if not np.any(xl[0] == 60):  # this draw kept the crop in air
            assert np.array_equal(xl, xa)
            continue
        blended += 1  # the label is the crop's mask, where the crop put it
        lesion = ya > 0
        if lesion.any():  # the lesion is pasted whole; the lung (never the body) elsewhere
            assert np.array_equal(xl[:, lesion], xa[:, lesion])
        far = ~np.isclose(xl[0], xa[0]) & ~lesion
        assert np.all(xl[:, (xa[0] == 0)] <= 60) and np.any(xl[0] == 60)
        assert not np.any(np.isclose(xl[0][far], 50.0))
    assert blended >= 10


def test_lung_centres_are_aerated_lung_of_a_series_only(tmp_path):
    cache = _cache_with_lung(tmp_path)
    series_rows = [tuple(r) for r in cache.negative_centres() if r[0] == 2]
    assert (2, 0, 18, 18) in series_rows  # every 7th allowed pixel, the dense one among them
    rows = [tuple(r) for r in cache.lung_centres()]
    assert rows == [r for r in series_rows if r != (2, 0, 18, 18)]
    assert [tuple(r) for r in cache.lung_centres(max_hu=400.0)] == series_rows


def test_lesion_weight_keeps_a_margin_and_fades():
    footprint = np.zeros((20, 20), bool)
    footprint[9:11, 9:11] = True
    weight = lesion_weight(footprint, grow=2, feather=2)
    assert np.all(weight[7:13, 7:13] == 1.0)  # lesion plus 2 pixels
    assert weight[9, 13] == pytest.approx(0.8) and weight[9, 16] == pytest.approx(0.2)
    assert weight[9, 17] == 0.0 and weight[0, 0] == 0.0
    assert np.all(np.diff(weight[9, 10:]) <= 0)


def test_air_and_lung_canvas_draws_both(tmp_path):
    cache = _cache_with_lung(tmp_path)
    mixed = PatchSampler(cache, cache.entries(), patch=32, seed=0, canvas="air+lung")
    in_lung = [bool(np.any(mixed._crop_patch(0)[0] == 60)) for _ in range(400)]
    assert 0.4 < np.mean(in_lung) < 0.6


def test_lung_canvas_needs_lung_windows(tmp_path):
    cache = _cache_with_small_crop(tmp_path)
    with pytest.raises(ValueError, match="negative_series"):
        PatchSampler(cache, cache.entries(), patch=16, seed=0, canvas="air+lung")
    assert build_config({"crop_canvas": "air+lung"}).crop_canvas == "air+lung"

