"""Run a segmentation model over one CT series, slice batch by slice batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engines.base import Engine
from engines.spec import SEARCH_REGIONS, ModelSpec
from pipeline.lungfield import lung_field
from pipeline.lungs import dilated_box, dilated_slices, fast_lung_mask, gate
from pipeline.postprocess import keep_mostly_inside
from pipeline.streaming import iter_model_inputs, restore_mask

GATE_MARGIN_MM = 5.0
"""Default margin (mm) of the search region within which model output counts as lesion
(:func:`segment_with_predictor`'s ``lung_margin_mm``; juxtapleural lesions sit at its border)."""

Predictor = Callable[[np.ndarray], np.ndarray]
"""Maps an ``(n, C, h, w)`` float32 batch to ``(n, 1, h, w)`` probabilities."""


def predict_batched(batch: np.ndarray, predictor: Predictor, batch_size: int = 8) -> np.ndarray:
    """Apply ``predictor`` to ``batch`` in chunks of ``batch_size`` slices.

    Parameters
    ----------
    batch : ndarray
        ``(n, C, h, w)`` model input.
    predictor : callable
        Any function from an ``(m, C, h, w)`` array to ``(m, 1, h, w)`` probabilities.
    batch_size : int
        Slices per call.

    Returns
    -------
    ndarray
        ``(n, 1, h, w)`` float32 probabilities.

    Raises
    ------
    ValueError
        If ``batch_size`` < 1, ``batch`` is not 4-D, or the predictor returns a wrong shape.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if batch.ndim != 4:
        raise ValueError(f"batch must be (n, C, h, w), got shape {batch.shape}")
    out = np.empty((batch.shape[0], 1, *batch.shape[2:]), dtype=np.float32)
    for start in range(0, batch.shape[0], batch_size):
        chunk = batch[start : start + batch_size]
        prob = np.asarray(predictor(chunk))
        expected = (chunk.shape[0], 1, *chunk.shape[2:])
        if prob.shape != expected:
            raise ValueError(f"predictor returned shape {prob.shape}, expected {expected}")
        out[start : start + len(chunk)] = prob
    return out


def lung_slices(lungs: np.ndarray) -> np.ndarray:
    """Return the indices of the slices that contain lung."""
    return np.flatnonzero(lungs.any(axis=(1, 2)))


def segment_with_predictor(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    z_positions_mm: np.ndarray,
    spec: ModelSpec,
    predictor: Predictor,
    batch_size: int = 8,
    lungs: np.ndarray | None = None,
    lung_margin_mm: float = GATE_MARGIN_MM,
    min_lung_fraction: float = 0.5,
    search_region: str = "lung",
) -> np.ndarray:
    """Segment lesions: search-region crop, model input, batched prediction, threshold, gate.

    The search region is the lung mask or, with ``search_region='field'``, the lung field
    (:func:`pipeline.lungfield.lung_field`: each lung's outline with its concavities filled,
    so that masses against the chest wall, the spine or the mediastinum and the hila are
    inside it); below, "field" means either. Slices outside the field are not
    sent to the model; the in-plane crop is the field's bounding box. The input is built and
    the output thresholded batch by batch (:mod:`pipeline.streaming`), so no float volume
    of the whole region is held. Voxels above ``spec.threshold`` count as lesion only
    inside the field dilated by ``lung_margin_mm``, and a connected lesion is kept only
    when at least ``min_lung_fraction`` of it lies in the field itself.

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.
    z_positions_mm : ndarray
        ``(z,)`` strictly increasing slice positions.
    spec : ModelSpec
        The model's sidecar (preprocessing and threshold).
    predictor : callable
        See :data:`Predictor`.
    batch_size : int
        Slices per predictor call.
    lungs : ndarray, optional
        Precomputed boolean lung mask.
    lung_margin_mm : float
        Dilation of the lung field used as gate.
    min_lung_fraction : float
        Smallest fraction of a connected lesion inside the (undilated) lung field.
    search_region : {'lung', 'field'}
        See above (:attr:`engines.spec.ModelSpec.search_region`).

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` lesion mask.

    Raises
    ------
    ValueError
        If the shapes do not agree, ``batch_size`` < 1 or ``search_region`` is unknown.
    """
    if hu.ndim != 3:
        raise ValueError(f"hu must be a (z, y, x) volume, got shape {hu.shape}")
    lungs = fast_lung_mask(hu, spacing) if lungs is None else lungs.astype(bool, copy=False)
    if lungs.shape != hu.shape:
        raise ValueError(f"lungs shape {lungs.shape} differs from hu shape {hu.shape}")
    if search_region not in SEARCH_REGIONS:
        raise ValueError(f"search_region must be one of {SEARCH_REGIONS}, got {search_region!r}")
    if not lungs.any():
        return np.zeros(hu.shape, dtype=bool)
    field = lung_field(lungs, spacing) if search_region == "field" else lungs
    box = dilated_box(field, spacing, lung_margin_mm)
    found = np.zeros(hu.shape, dtype=bool)
    for run in _runs(dilated_slices(field, spacing, lung_margin_mm)):
        roi = (slice(int(run[0]), int(run[-1]) + 1), box[1], box[2])
        for model_input in iter_model_inputs(hu, spacing, z_positions_mm, spec, roi, batch_size):
            prob = predict_batched(model_input.batch, predictor, batch_size)
            found[model_input.roi] = restore_mask(prob, model_input, spec.threshold)
    found = gate(found, field, spacing, lung_margin_mm)
    return keep_mostly_inside(found, field, min_lung_fraction)


def _runs(indices: np.ndarray) -> list[np.ndarray]:
    """Split sorted indices into runs of consecutive values."""
    if indices.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(indices) > 1) + 1
    return np.split(indices, cuts)


def segment_with_engine(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    z_positions_mm: np.ndarray,
    engine: Engine,
    batch_size: int = 8,
    lungs: np.ndarray | None = None,
    search_region: str | None = None,
) -> np.ndarray:
    """Run :func:`segment_with_predictor` with an :class:`engines.Engine`.

    ``search_region`` None takes the model's own (its sidecar's ``search_region``).

    Raises
    ------
    ValueError
        As :func:`segment_with_predictor`.
    """
    return segment_with_predictor(
        hu, spacing, z_positions_mm, engine.spec, engine.infer, batch_size, lungs,
        search_region=search_region or engine.spec.search_region,
    )
