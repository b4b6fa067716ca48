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
