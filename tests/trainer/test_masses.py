"""Synthetic masses on real CT (the demo series) and whole-series scenes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.lungfield import lung_field
from pipeline.lungs import dilate, fast_lung_mask
from trainer.data.masses import (
    CAVITY_HU,
    NECROTIC_HU,
    SOLID_HU,
    MassRecipe,
    insert_mass,
    mass_texture,
    scaled_shape,
    synthesize,
)

from .conftest import DEMO, write_list, write_mask


def _lobulated(shape=(9, 15, 15)):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    ball = (z - 4) ** 2 + (y - 7) ** 2 + (x - 7) ** 2 <= 16
    return ball | ((z - 4) ** 2 + (y - 3) ** 2 + (x - 11) ** 2 <= 6)


def _recipe(**changes) -> MassRecipe:
    base = {"diameter_mm": 50.0, "necrotic": False, "cavity": False, "attach": "wall",
            "solid_hu": 40.0, "necrotic_hu": 15.0}
    return MassRecipe(**{**base, **changes})


@pytest.mark.parametrize("diameter", [30.0, 80.0])
def test_scaled_shape_has_the_asked_size_on_the_host_grid(diameter):
    rng = np.random.default_rng(0)
    spacing = (2.5, 0.7, 0.7)
    mask = scaled_shape(_lobulated(), (1.0, 0.8, 0.8), diameter, spacing, rng)
    equivalent = np.cbrt(6.0 * mask.sum() * np.prod(spacing) / np.pi)
    assert abs(equivalent - diameter) / diameter < 0.1
    extent = np.array(mask.shape) * np.array(spacing)
    assert extent.max() < 2.0 * diameter
    with pytest.raises(ValueError, match="empty"):
        scaled_shape(np.zeros((3, 3, 3), bool), (1.0, 1.0, 1.0), 40.0, spacing, rng)


def test_texture_holds_solid_necrotic_and_air_parts():
    rng = np.random.default_rng(1)
    spacing = (2.5, 0.7, 0.7)
    mask = scaled_shape(_lobulated(), (1.0, 0.8, 0.8), 60.0, spacing, rng)
    solid = mass_texture(mask, spacing, _recipe(), rng)[mask]
    assert SOLID_HU[0] - 10 < np.median(solid) < SOLID_HU[1] + 10
    assert solid.min() > -200.0  # no air in a solid mass
    both = mass_texture(mask, spacing, _recipe(necrotic=True, cavity=True), rng)[mask]
    necrotic = (both > NECROTIC_HU[0] - 30) & (both < NECROTIC_HU[1] + 5)
    assert necrotic.mean() > 0.1
    air = both < CAVITY_HU + 200
    assert 0.01 < air.mean() < 0.5
    assert not (mass_texture(mask, spacing, _recipe(), rng) != 0)[~mask].any()


@pytest.fixture(scope="module")
def demo_field(demo_series):
    spacing = demo_series.spacing
    return lung_field(fast_lung_mask(demo_series.hu, spacing), spacing)


def test_synthesized_mass_rests_on_the_wall_inside_the_field(demo_series, demo_field):
    hu, spacing = demo_series.hu, demo_series.spacing
    rng = np.random.default_rng(3)
    made = [synthesize(hu, spacing, demo_field, np.zeros(hu.shape, bool), _lobulated(),
                       (1.0, 0.8, 0.8), rng) for _ in range(4)]
    made = [m for m in made if m is not None]
    assert made, "no mass could be placed in the demo series"
    for out, mask, recipe in made:
        assert (mask & ~dilate(demo_field, spacing, 3.0)).sum() == 0
        assert (mask & demo_field).sum() >= 0.6 * mask.sum()
        touches = dilate(mask, spacing, 4.0) & ~demo_field & (hu > -300)
        assert touches.any()  # it rests on the wall, the hilum or the mediastinum
        assert (out[~mask] == hu[~mask]).all()
        assert np.median(out[mask]) > -100.0
        assert recipe.diameter_mm >= 30.0


def test_insert_mass_outside_the_volume_is_refused(demo_series, demo_field):
    shape = np.ones((3, 4, 4), bool)
    with pytest.raises(ValueError, match="outside"):
        insert_mass(demo_series.hu, demo_series.spacing, demo_field, shape,
                    np.zeros(shape.shape, np.float32), np.array([500, 0, 0]))


def test_scenes_label_lesions_and_field_and_the_sampler_draws_them(demo_series, tmp_path):
    from engines.spec import ModelSpec
    from trainer.data.patches import PatchCache, PatchSampler
    from trainer.data.scenes import FIELD, LESION, build_scenes

    z, y, x = np.ogrid[: demo_series.hu.shape[0], :512, :512]
    nodule = (z - 14) ** 2 * 9 + (y - 365) ** 2 + (x - 315) ** 2 <= 8**2
    write_mask(demo_series, nodule, tmp_path / "nodule.nii.gz")
    listed = write_list(tmp_path, [{"series": str(DEMO), "lesions": "nodule.nii.gz",
                                    "patient": "P1"}])
    spec = ModelSpec(name="t", version="0", architecture="t", slice_offsets_mm=(-2.0, 0.0, 2.0),
                     pixel_spacing_mm=0.78, hu_window=(-1000.0, 400.0))
    sources = [_source_record(tmp_path)]
    scenes = build_scenes(listed, sources, 2, spec, seed=0)
    assert scenes[0][2]["texture"] == "real" and len(scenes) >= 2
    for image, label, meta in scenes:
        assert image.dtype == np.uint8 and image.shape[1] == 3
        assert image.shape[0] == label.shape[0] and image.shape[2:] == label.shape[1:]
        assert (label == LESION).any() and (label == FIELD).any()
        assert meta["scene"]
    assert scenes[1][2]["texture"].startswith("mass")
    path = tmp_path / "cache.npz"
    _save_scenes(scenes, path)
    cache = PatchCache(path)
    assert cache.entries() == [] and cache.scene_entries() == list(range(len(scenes)))
    sampler = PatchSampler(cache, [0], 64, seed=0, scene_fraction=1.0)
    x, y = sampler.sample(24)
    assert x.shape == (24, 3, 64, 64) and y.shape == (24, 1, 64, 64)
    assert 0 < (y.reshape(24, -1).max(axis=1) > 0).sum() < 24  # positives and negatives


def _source_record(tmp_path):
    import SimpleITK as sitk

    from trainer.data.datasets import CropRecord

    mask = _lobulated().astype(np.uint8)
    for name, array in (("image", mask.astype(np.int16) * 1040 - 1000), ("mask", mask)):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing((0.8, 0.8, 1.0))
        sitk.WriteImage(img, str(tmp_path / f"source-{name}.nii.gz"))
    return CropRecord(name="S_R_1", patient="S", nodule=1,
                      image_path=tmp_path / "source-image.nii.gz",
                      mask_path=tmp_path / "source-mask.nii.gz", texture="solid",
                      diameter_mm=12.0)


def _save_scenes(scenes, path):
    import json

    images, labels, meta = zip(*scenes, strict=True)
    np.savez_compressed(
        path, images=np.concatenate([i.ravel() for i in images]),
        labels=np.concatenate([lab.ravel() for lab in labels]),
        shapes=np.array([i.shape for i in images]), meta=np.array(json.dumps(list(meta))),
        config=np.array(json.dumps({"hu_window": [-1000.0, 400.0]})))
