"""Patch sampling from a small synthetic cache: crop weighting by texture."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from trainer.cache import _save
from trainer.config import build_config
from trainer.patches import PatchCache, PatchSampler


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


def test_reflect_canvas_fills_the_patch_with_the_mirrored_crop(tmp_path):
    cache = _cache_with_small_crop(tmp_path)
    air = PatchSampler(cache, cache.entries(), patch=16, seed=0)
    mirror = PatchSampler(cache, cache.entries(), patch=16, seed=0, canvas="reflect")
    for _ in range(20):
        xa, ya = air._crop_patch(0)
        xr, yr = mirror._crop_patch(0)
        assert (xa == 0).any() and (xr > 0).all()  # air around the crop, or none at all
        inside = xa[0] > 0  # the crop itself sits at the same place in both
        assert np.array_equal(xr[:, inside], xa[:, inside])
        assert np.array_equal(yr[inside], ya[inside])
        # pixel values are unique within the crop, so a mirrored copy of a lesion pixel has
        # its value: every such pixel, and only those, must be labelled
        lesion_values = [12, 13, 17, 18]
        assert np.array_equal(yr > 0, np.isin(np.round(xr[0]), lesion_values))


def test_unknown_canvas_is_rejected(tmp_path):
    cache = _cache_with_small_crop(tmp_path)
    with pytest.raises(ValueError, match="canvas"):
        PatchSampler(cache, cache.entries(), patch=16, seed=0, canvas="noise")
    with pytest.raises(ConfigError, match="crop_canvas"):
        build_config({"crop_canvas": "noise"})
