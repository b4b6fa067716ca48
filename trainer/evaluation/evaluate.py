"""Evaluate segmenters on crop folders and on whole series.

The learned model is evaluated as exported (through :mod:`engines`), so the figures are
those users get; the paper's baselines (thresholding, k-means from
:mod:`pipeline.baseline`) run through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.shape import drop_implausible, is_implausible, largest_component_shape
from trainer.data.datasets import CropRecord, list_crops, read_crop, read_reference_mask
from trainer.evaluation.components import describe_components, render_components
from trainer.evaluation.metrics import lesion_scores, overlap_metrics, voxel_metrics

Segmenter = Callable[[np.ndarray, tuple, np.ndarray], np.ndarray]
"""Maps ``(hu (z, y, x), spacing (z, y, x) mm, z_positions)`` to a boolean lesion mask."""

SIZE_BINS = ((0.0, 6.0, "<6mm"), (6.0, 10.0, "6-10mm"), (10.0, 20.0, "10-20mm"),
             (20.0, 1e9, ">=20mm"))


def model_probabilities(engine, hu, spacing, z, batch_size: int = 16) -> np.ndarray:
    """Run the engine over every slice of ``hu`` (no lung gating): ``(z, y, x)`` probabilities."""
    from pipeline.inference import predict_batched
    from pipeline.preprocess import prepare_slices, restore_probabilities

    inp = prepare_slices(hu, spacing, z, engine.spec)
    prob = predict_batched(inp.batch, engine.infer, batch_size)
    return restore_probabilities(prob, inp, hu.shape)


CANVAS_MM = 50.0
"""Crops are evaluated inside an air canvas of at least this size, as in training, where
each crop sat at a random place in a 64-pixel (50 mm at 0.78 mm) air-filled patch."""


def embed_in_air(hu: np.ndarray, spacing: tuple, air_hu: float, canvas_mm: float = CANVAS_MM):
    """Pad a crop in-plane with ``air_hu`` to at least ``canvas_mm`` plus an 8 mm margin, centred.

    Returns
    -------
    padded : ndarray
        The padded ``(z, y', x')`` volume.
    inner : tuple of slice
        Where the original crop sits in ``padded``.
    """
    pads = [(0, 0)]
    for axis in (1, 2):
        need = int(np.ceil(canvas_mm / spacing[axis]))
        extra = max(need - hu.shape[axis], 0) + int(np.ceil(8.0 / spacing[axis]))
        pads.append((extra // 2, extra - extra // 2))
    inner = (slice(None), slice(pads[1][0], pads[1][0] + hu.shape[1]),
             slice(pads[2][0], pads[2][0] + hu.shape[2]))
    return np.pad(hu, pads, constant_values=air_hu), inner


def crop_model_segmenter(engine, canvas_mm: float = CANVAS_MM) -> Segmenter:
    """Crop-level segmenter: model probability above threshold, the crop embedded in air.

    The air canvas (:func:`embed_in_air`, :data:`CANVAS_MM`) is what training surrounds a
    crop with.
    """

    def segment(hu, spacing, z):
        padded, inner = embed_in_air(hu, spacing, engine.spec.hu_window[0], canvas_mm)
        prob = model_probabilities(engine, padded, spacing, z)
        return prob[inner] > engine.spec.threshold
    return segment


def crop_baseline_segmenter(kind: str) -> Segmenter:
    """Crop-level baseline (``threshold`` or ``kmeans``, see :mod:`trainer.evaluation.baselines`).

    Raises
    ------
    ValueError
        If ``kind`` is unknown.
    """
    from trainer.evaluation import baselines

    funcs = {"threshold": baselines.threshold_crop, "kmeans": baselines.kmeans_crop}
    if kind not in funcs:
        raise ValueError(f"kind must be one of {sorted(funcs)}, got {kind!r}")

    def segment(hu, spacing, z):
        return funcs[kind](hu, spacing)
    return segment


def _summary(rows: list[dict]) -> dict:
    out = {"n": len(rows)}
    for key in ("dice", "iou", "precision", "recall", "f1"):
        vals = [r[key] for r in rows]
        name = f"{key}_mean" if key in ("dice", "iou") else key
        out[name] = float(np.mean(vals)) if vals else None
    if rows:
        out["dice_median"] = float(np.median([r["dice"] for r in rows]))
    return out


def summarise(rows: list[dict]) -> dict:
    """Pooled means plus breakdowns by texture and by size (``diameter_mm``)."""
    result = _summary(rows)
    textures = sorted({r["texture"] for r in rows})
    result["by_texture"] = {t: _summary([r for r in rows if r["texture"] == t]) for t in textures}
    result["by_size"] = {
        name: _summary([r for r in rows if lo <= r["diameter_mm"] < hi])
        for lo, hi, name in SIZE_BINS
    }
    return result


def evaluate_crops(
    segmenter: Segmenter, records: list[CropRecord], progress: bool = False,
    shape_limits: dict[str, float] | None = None,
) -> dict:
    """Per-nodule 3D overlap of ``segmenter`` on crops, with summaries.

    With ``shape_limits`` (a model sidecar's), each nodule also records whether the
    whole-series shape gate (:mod:`pipeline.shape`) would remove its largest predicted
    component, and ``shape_gate_removes`` counts them: the gate's cost in found nodules.

    Returns
    -------
    dict
        ``n, dice_mean, iou_mean, precision, recall, f1, dice_median, by_texture, by_size,
        per_nodule`` (and ``shape_gate_removes`` with ``shape_limits``).

    Raises
    ------
    ValueError
        If ``records`` is empty.
    """
    if not records:
        raise ValueError("records must not be empty")
    rows = []
    iterator = records
    if progress:
        from tqdm import tqdm

        iterator = tqdm(records, desc="crops", mininterval=10)
    for rec in iterator:
        hu, mask, spacing, z = read_crop(rec)
        pred = segmenter(hu, spacing, z)
        row = {"name": rec.name, "texture": rec.texture, "diameter_mm": rec.diameter_mm,
               **overlap_metrics(pred, mask)}
        if shape_limits:
            shape = largest_component_shape(pred, spacing)
            row["shape_gate_removes"] = bool(shape and is_implausible(shape, shape_limits))
        rows.append(row)
    result = summarise(rows)
    if shape_limits:
        result["shape_gate_removes"] = sum(r["shape_gate_removes"] for r in rows)
    return {**result, "per_nodule": rows}


def select_records(vois_dir: str | Path, patients: list[str] | None = None) -> list[CropRecord]:
    """Crops of ``vois_dir``, restricted to ``patients`` when given.

    Raises
    ------
    ValueError
        If no crop is left.
    """
    records = list_crops(vois_dir)
    if patients is not None:
        keep = set(patients)
        records = [r for r in records if r.patient in keep]
    if not records:
        raise ValueError(f"no crops of the selected patients in {vois_dir}")
    return records


def evaluate_series(
    series_dir: str | Path, mask_path: str | Path, segmenter_kind: str = "model",
    model_path: str | Path | None = None, threads: int = 2, precision: str = "auto",
    components_dir: str | Path | None = None,
) -> dict:
    """Whole-series evaluation: voxel and lesion-level figures after post-processing.

    The model runs through :func:`pipeline.inference.segment_with_engine` (lung crop and
    gate), then :func:`pipeline.postprocess.label_lesions` drops components below the
    sidecar's ``min_lesion_volume_mm3`` and those shaped outside its ``shape_limits``
    (:mod:`pipeline.shape`): the product's own path. ``precision`` picks the
    ONNX model file as the engine does (:func:`engines.onnx_engine.select_model_file`).
    The result lists every kept component under ``components``
    (:func:`trainer.evaluation.components.describe_components`); with ``components_dir`` a PNG view
    of each is saved there too.

    Raises
    ------
    ValueError
        If ``segmenter_kind`` is unknown or the mask does not fit the series.
    """
    from pipeline.series import load_series_dir

    series = load_series_dir(series_dir)
    ref = read_reference_mask(mask_path, series.z_positions_mm, series.hu.shape)
    return evaluate_loaded_series(series, ref, segmenter_kind, model_path, threads, precision,
                                  components_dir)


def evaluate_loaded_series(
    series, ref: np.ndarray, segmenter_kind: str = "model",
    model_path: str | Path | None = None, threads: int = 2, precision: str = "auto",
    components_dir: str | Path | None = None, engine=None,
) -> dict:
    """:func:`evaluate_series` on a loaded series and its reference mask (volume order).

    ``engine``, an engine already open (:func:`engines.create_engine`), is used for the
    model instead of opening ``model_path``, so that many series share one.

    Raises
    ------
    ValueError
        If ``segmenter_kind`` is unknown or ``ref`` does not have the series' shape.
    """
    from pipeline.lungs import fast_lung_mask
    from pipeline.postprocess import label_lesions

    hu = series.hu.astype(np.float32)
    if ref.shape != hu.shape:
        raise ValueError(f"reference shape {ref.shape} != series shape {hu.shape}")
    lungs = fast_lung_mask(hu, series.spacing)
    prob, pred, min_volume, shape_limits, described = _series_prediction(
        segmenter_kind, hu, series, lungs, model_path, threads, precision, engine)
    ungated = label_lesions(pred, series.spacing, min_volume)
    gated = drop_implausible(ungated, series.spacing, shape_limits)
    post = gated > 0
    out = {"segmenter": segmenter_kind, "engine": described, "n_slices": int(hu.shape[0]),
           "shape_limits": dict(shape_limits),
           "dropped_by_shape": int(ungated.max()) - int(gated.max())}
    out.update(voxel_metrics(prob, post, ref))
    out.update(lesion_scores(post, ref))
    out["false_positives_per_scan"] = out["false_positives"]
    rows = describe_components(gated, ref > 0, hu, prob, series.spacing,
                               series.index_to_patient)
    out["components"] = rows
    if components_dir is not None:
        render_components(rows, gated, ref > 0, hu, series.spacing, components_dir)
    return out


def _series_prediction(kind, hu, series, lungs, model_path, threads, precision, engine=None):
    from pipeline import baseline
    from pipeline.inference import segment_with_engine
    from pipeline.preprocess import bounding_box

    if kind in ("threshold", "kmeans"):
        func = baseline.threshold_segment if kind == "threshold" else baseline.kmeans_segment
        pred = func(hu, series.spacing, lungs=lungs)
        return pred.astype(np.float32), pred, baseline.BaselineParams().min_volume_mm3, {}, kind
    if kind != "model":
        raise ValueError(f"segmenter_kind must be model, threshold or kmeans, got {kind!r}")
    from contextlib import nullcontext

    from engines import create_engine

    opened = (nullcontext(engine) if engine is not None
              else create_engine("onnx", model_path, threads=threads, precision=precision))
    with opened as engine:
        pred = segment_with_engine(hu, series.spacing, series.z_positions_mm, engine,
                                   lungs=lungs)
        box = bounding_box(lungs, (0, 8, 8))
        prob = np.zeros(hu.shape, np.float32)
        prob[:, box[1], box[2]] = model_probabilities(
            engine, np.ascontiguousarray(hu[:, box[1], box[2]]), series.spacing,
            series.z_positions_mm)
    spec = engine.spec
    return prob, pred, spec.min_lesion_volume_mm3, spec.shape_limits, engine.describe()
