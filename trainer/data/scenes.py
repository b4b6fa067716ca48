"""Whole-series scenes: lesions in their real surroundings, for training in the lung field.

A scene is a stack of model-input slices of a whole series (cut to its lung field) with a
label per pixel: 0 outside the field grown by the product path's gate margin, 1 in it, 2 on
a lesion. Training windows are centred on lesion pixels (positives) or on other field
pixels (negatives: lung, vessels, hila, the wall and the mediastinum the field touches).
Each series of a ``scene_list`` gives one scene with its real lesions and
``scene_masses`` scenes with one synthetic mass each (:mod:`trainer.data.masses`), cut to
the slices the mass covers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.spec import ModelSpec
from pipeline.inference import GATE_MARGIN_MM
from pipeline.lungfield import lung_field
from pipeline.lungs import dilate, fast_lung_mask
from pipeline.preprocess import bounding_box, prepare_slices, resample_inplane
from pipeline.series import CTSeries
from trainer.data.datasets import CropRecord, read_crop
from trainer.data.masses import synthesize
from trainer.data.series_list import ListedSeries, load_listed, read_series_list

OUTSIDE, FIELD, LESION = 0, 1, 2
"""Scene label values."""
MASS_SLAB_MM = 10.0
"""Slices kept beyond a synthetic mass's first and last slice."""
SOURCE_MIN_DIAMETER_MM = 10.0
"""Nodules lending their shape to synthetic masses are at least this large (more outline
detail than a small nodule's few voxels)."""


def scene_slices(
    hu: np.ndarray, spacing: tuple[float, float, float], z_positions: np.ndarray,
    lesion: np.ndarray, field: np.ndarray, spec: ModelSpec, slices: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model input (uint8) and scene label of a series, cut to its field's box.

    Returns
    -------
    image : ndarray
        ``(n, c, h, w)`` uint8, the model input quantised to 1/255.
    label : ndarray
        ``(n, h, w)`` uint8 of ``OUTSIDE``, ``FIELD`` and ``LESION``.

    Raises
    ------
    ValueError
        If the field is empty.
    """
    region = dilate(field, spacing, GATE_MARGIN_MM)
    box = bounding_box(region, (0, 0, 0))
    roi = (slices if slices is not None else box[0], box[1], box[2])
    inp = prepare_slices(hu, spacing, z_positions, spec, roi)
    h, w = inp.resampled_yx
    image = np.round(inp.batch[:, :, :h, :w] * 255.0).astype(np.uint8)
    label = np.zeros((image.shape[0], h, w), dtype=np.uint8)
    for value, mask in ((FIELD, region), (LESION, lesion)):
        resampled = resample_inplane(mask[inp.roi].astype(np.float32), spacing[1:],
                                     spec.pixel_spacing_mm, shape_yx=(h, w))
        label[resampled > 0.5] = value
    return image, label


def mass_sources(records: list[CropRecord]) -> list[CropRecord]:
    """Return the solid nodule crops of at least ``SOURCE_MIN_DIAMETER_MM`` (mass shapes).

    Raises
    ------
    ValueError
        If there is none.
    """
    sources = [r for r in records
               if r.diameter_mm >= SOURCE_MIN_DIAMETER_MM and r.texture == "solid"]
    if not sources:
        raise ValueError(f"no solid nodule crop of >= {SOURCE_MIN_DIAMETER_MM} mm to shape "
                         "synthetic masses from")
    return sources


def build_scenes(
    list_path: str | Path, sources: list[CropRecord], masses: int, spec: ModelSpec, seed: int,
) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """Scenes of every series of a series list: its real lesions, then ``masses`` masses.

    Parameters
    ----------
    list_path : str or Path
        Series list (:mod:`trainer.data.series_list`).
    sources : list of CropRecord
        Nodule crops lending their shape to the masses (:func:`mass_sources`).
    masses : int
        Synthetic masses per series (each its own scene).
    spec : ModelSpec
        Model input settings.
    seed : int
        Seed of the masses' random draws.

    Returns
    -------
    list of tuple
        ``(image, label, meta)`` per scene (:func:`scene_slices`).

    Raises
    ------
    ValueError
        If ``masses`` is negative, or from the series list.
    """
    if masses < 0:
        raise ValueError(f"scene_masses must be >= 0, got {masses!r}")
    rng = np.random.default_rng(seed)
    out = []
    for entry in read_series_list(list_path):
        series, lesion = read_listed_series_lesions(entry)
        hu, spacing, z = series.hu, series.spacing, series.z_positions_mm
        field = lung_field(fast_lung_mask(hu, spacing), spacing)
        if not field.any():
            raise ValueError(f"{entry.name}: no lung found, cannot build a scene")
        image, label = scene_slices(hu, spacing, z, lesion, field, spec)
        out.append((image, label, _meta(entry.name, entry.patient, "real")))
        for k in range(masses):
            scene = _mass_scene(hu, spacing, z, field, lesion, sources, spec, rng)
            if scene is not None:
                out.append((*scene[:2], _meta(f"{entry.name}-mass-{k + 1}", entry.patient,
                                             scene[2])))
    return out


def read_listed_series_lesions(entry: ListedSeries) -> tuple[CTSeries, np.ndarray]:
    """Return ``(series, lesion mask)`` of a series-list entry (all False if lesion-free).

    Raises
    ------
    ValueError
        As :func:`trainer.data.series_list.load_listed`.
    """
    series, lesion = load_listed(entry)
    if lesion is None:
        return series, np.zeros(series.hu.shape, dtype=bool)
    return series, np.asarray(lesion, dtype=bool)


def _mass_scene(hu, spacing, z, field, lesion, sources, spec, rng):
    record = sources[int(rng.integers(len(sources)))]
    _, source, source_spacing, _ = read_crop(record)
    made = synthesize(hu, spacing, field, lesion, source, source_spacing, rng)
    if made is None:
        return None
    with_mass, mass, recipe = made
    rows = np.flatnonzero(mass.any(axis=(1, 2)))
    reach = int(round(MASS_SLAB_MM / spacing[0]))
    slab = slice(max(0, rows[0] - reach), min(hu.shape[0], rows[-1] + 1 + reach))
    image, label = scene_slices(with_mass, spacing, z, lesion | mass, field, spec, slab)
    kind = ("mass" + (", necrotic" if recipe.necrotic else "")
            + (", cavity" if recipe.cavity else "") + f", {recipe.attach}"
            + f", {recipe.diameter_mm:.0f} mm")
    return image, label, kind


def _meta(name: str, patient: str, kind: str) -> dict:
    return {"name": name, "patient": patient, "texture": kind, "diameter_mm": 0.0,
            "negative": False, "scene": True}
