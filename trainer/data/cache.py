"""Build the patch cache: every crop through the shared preprocessing, stored compactly.

Images are stored as uint8 (the [0, 1] model input quantised to 1/255, i.e. 5.5 HU for a
1400 HU window); training adds uniform de-quantisation noise. Unlabelled whole
slices without annotated lesions (2 chest slices from ``dicom-reference/lungmask-slices``, 3
abdominal slices from ``dicom-reference/dcmqi``) are added as negatives: patches centred
anywhere in the body (lung, pleura, mediastinum, liver dome, chest wall) labelled 0. Whole
LIDC series named by ``negative_series`` add windows centred in their lung away from every
reader's mark (:mod:`trainer.data.negatives`); series of any source listed in ``negative_list``
add windows away from their lesion mask, or anywhere in the lung of a series declared
lesion-free (:mod:`trainer.data.series_list`). Series of a ``scene_list`` add whole-series
scenes with their real lesions and synthetic masses (:mod:`trainer.data.scenes`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.errors import ConfigError
from pipeline.preprocess import body_mask, bounding_box, prepare_slices, resample_inplane
from trainer.config import TrainConfig, spec_from_config
from trainer.data.datasets import list_crops, read_crop
from trainer.data.negatives import read_negative_series, reader_xml
from trainer.data.scenes import build_scenes, mass_sources
from trainer.data.series_list import read_listed_series, read_series_list


def _model_slices(hu, mask, spacing, z, spec, roi=None):
    inp = prepare_slices(hu, spacing, z, spec, roi)
    h, w = inp.resampled_yx
    img = inp.batch[:, :, :h, :w]
    m = mask[inp.roi].astype(np.float32)
    lab = resample_inplane(m, spacing[1:], spec.pixel_spacing_mm, shape_yx=(h, w)) > 0.5
    return np.round(img * 255.0).astype(np.uint8), lab.astype(np.uint8)


def read_negative_slices(folder: Path):
    """Read adjacent unlabelled CT slices; returns ``(hu, body, spacing, z)`` or None if absent.

    ``body`` (:func:`pipeline.preprocess.body_mask`) marks where negative patches are centred.
    """
    files = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if len(files) < 2:
        return None
    import pydicom

    dss = sorted((pydicom.dcmread(f) for f in files),
                 key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([
        d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        for d in dss
    ])
    z = np.array([float(d.ImagePositionPatient[2]) for d in dss])
    dy, dx = (float(v) for v in dss[0].PixelSpacing)
    spacing = (float(np.diff(z).mean()), dy, dx)
    return hu, body_mask(hu, spacing), spacing, z


def build_cache(cfg: TrainConfig, path: str | Path | None = None) -> Path:
    """Preprocess every crop of ``cfg.vois_dir`` (plus negatives) into an ``.npz`` cache.

    Raises
    ------
    ConfigError
        If ``vois_dir`` is not set.
    FileNotFoundError, ValueError
        From :func:`trainer.data.datasets.list_crops` for a missing or malformed folder, and from
        :func:`trainer.data.negatives.read_negative_series` for a ``negative_series`` folder
        that is missing, holds no reader XML or is not one CT series, and from
        :mod:`trainer.data.series_list` for a wrong ``negative_list`` or entry.
    """
    if not cfg.vois_dir:
        raise ConfigError("vois_dir is not set: give the crop folder (--set vois_dir=DIR)")
    spec = spec_from_config(cfg)
    records = list_crops(cfg.vois_dir)
    series_folders = negative_series_folders(cfg)
    for folder in series_folders:
        reader_xml(folder)  # a wrong folder fails before the crops are processed
    listed = read_series_list(cfg.negative_list) if cfg.negative_list else []
    imgs, labs, meta = [], [], []
    for rec in tqdm(records, desc="crops", mininterval=5):
        hu, mask, spacing, z = read_crop(rec)
        img, lab = _model_slices(hu, mask, spacing, z, spec)
        imgs.append(img)
        labs.append(lab)
        meta.append({"name": rec.name, "patient": rec.patient, "texture": rec.texture,
                     "diameter_mm": rec.diameter_mm, "negative": False})
    for folder in (Path(p.strip()) for p in cfg.negative_slices.split(",") if p.strip()):
        neg = read_negative_slices(folder)
        if neg is None:
            continue
        hu, body, spacing, z = neg
        img, body_r = _model_slices(hu, body, spacing, z, spec, bounding_box(body, (0, 0, 0)))
        _add_negative(imgs, labs, meta, folder.name, img, body_r, lung=False)
    for folder in series_folders:
        _add_series(imgs, labs, meta, folder.name, *read_negative_series(folder), spec)
    for entry in listed:
        _add_series(imgs, labs, meta, entry.name, *read_listed_series(entry), spec)
    if cfg.scene_list:
        sources = mass_sources(records) if cfg.scene_masses else []
        for image, label, info in build_scenes(cfg.scene_list, sources, cfg.scene_masses,
                                               spec, cfg.seed):
            imgs.append(image)
            labs.append(label)
            meta.append(info)
    return _save(imgs, labs, meta, cfg, Path(path or cfg.cache))


def _add_series(imgs, labs, meta, name: str, series, centres: np.ndarray, spec) -> None:
    hu, spacing = series.hu, series.spacing
    roi = bounding_box(body_mask(hu, spacing), (0, 0, 0))
    img, centres_r = _model_slices(hu, centres, spacing, series.z_positions_mm, spec, roi)
    _add_negative(imgs, labs, meta, name, img, centres_r, lung=True)


def negative_series_folders(cfg: TrainConfig) -> list[Path]:
    """Return the folders of ``cfg.negative_series`` (comma-separated; empty for none)."""
    return [Path(p.strip()) for p in cfg.negative_series.split(",") if p.strip()]


def _add_negative(imgs, labs, meta, name: str, img: np.ndarray, centres: np.ndarray,
                  lung: bool) -> None:
    imgs.append(img)
    labs.append(centres)
    meta.append({"name": name, "patient": name, "texture": "none", "diameter_mm": 0.0,
                 "negative": True, "lung": lung})


def _save(imgs, labs, meta, cfg, path: Path) -> Path:
    shapes = np.array([i.shape for i in imgs], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        images=np.concatenate([i.ravel() for i in imgs]),
        labels=np.concatenate([m.ravel() for m in labs]),
        shapes=shapes,
        meta=np.array(json.dumps(meta)),
        config=np.array(json.dumps(cfg.to_dict())),
    )
    return path
