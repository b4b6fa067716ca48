"""Preprocessing shared by training and inference.

All arrays are ``(z, y, x)``; spacings are ``(z, y, x)`` in mm; CT values are HU. The trainer
builds its patches with these functions and the pipeline builds its inference batches with them,
so a model sees the same input in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from engines.spec import ModelSpec
from pipeline.lungfield import convex_fill
from pipeline.morphology import binary_closing, binary_opening, fill_holes

LUNG_AIR_HU = -320.0
"""Voxels below this HU inside the body are candidate lung (air-filled) tissue."""

CUT_LUNG_MIN_INSIDE = 0.9
"""Share of an air component touching the image border that must lie inside the body's
outline for it to count as lung cut open by the field of view (:func:`cut_lung`)."""


def hu_to_unit(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip HU to ``window`` and map it linearly to [0, 1] (float32).

    Parameters
    ----------
    hu : ndarray
        CT values in HU, any shape.
    window : tuple of float
        ``(low, high)`` HU mapped to 0 and 1.

    Returns
    -------
    ndarray
        float32 array of the same shape.
    """
    lo, hi = float(window[0]), float(window[1])
    out = np.clip(hu.astype(np.float32, copy=False), lo, hi)
    out -= lo
    out *= 1.0 / (hi - lo)
    return out


def to_image(array: np.ndarray, spacing: tuple[float, float, float]) -> sitk.Image:
    """Return ``array`` (``(z, y, x)``) as a SimpleITK image with ``(z, y, x)`` ``spacing`` mm."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    return img


def _largest_components(mask: sitk.Image, keep: int, min_fraction: float) -> sitk.Image:
    relabel = sitk.RelabelComponentImageFilter()
    relabel.SetSortByObjectSize(True)
    labels = relabel.Execute(sitk.ConnectedComponent(mask))
    sizes = list(relabel.GetSizeOfObjectsInPixels())
    if not sizes:
        return mask
    kept = [i + 1 for i, s in enumerate(sizes[:keep]) if s >= min_fraction * sizes[0]]
    return sitk.BinaryThreshold(labels, 1, max(kept), 1, 0)


def body_mask(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Return the patient's body (largest component above -500 HU, holes filled per slice).

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` voxel spacing in mm.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` mask.
    """
    img = to_image((hu > -500).astype(np.uint8), spacing)
    body = _largest_components(img, keep=1, min_fraction=1.0)
    return fill_holes(sitk.GetArrayFromImage(body), per_slice=True)


def lung_mask(
    hu: np.ndarray, spacing: tuple[float, float, float], closing_mm: float = 6.0
) -> np.ndarray:
    """Isolate the lungs by thresholding and morphology.

    Air below ``LUNG_AIR_HU`` inside the body, the two largest components kept, then a
    closing of ``closing_mm`` and per-slice hole filling so that nodules, vessels and
    juxtapleural lesions are inside the mask.

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` voxel spacing in mm.
    closing_mm : float
        Radius of the morphological closing in mm.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` lung mask; all False when no lung is found.
    """
    if hu.ndim != 3:
        raise ValueError(f"hu must be a (z, y, x) volume, got shape {hu.shape}")
    body = body_mask(hu, spacing)
    low = hu < LUNG_AIR_HU
    air = low & body
    inside = body_outline(body, low)
    if inside is not body:
        air |= cut_lung(low, inside, spacing)
    if not air.any():
        return air
    opened = binary_opening(air, _radius(spacing, 1.0))
    if not opened.any():
        return opened
    # Components, closing and filling on the box of the opened air: exact, since the closing
    # (with a safe border) of a mask stays inside the mask's bounding box.
    box = bounding_box(opened, (1, 1, 1))
    lungs = _largest_components(to_image(opened[box].astype(np.uint8), spacing), 2, 0.1)
    lungs_array = sitk.GetArrayFromImage(lungs).astype(bool)
    closed = binary_closing(lungs_array, _radius(spacing, closing_mm))
    out = np.zeros(hu.shape, dtype=bool)
    out[box] = fill_holes(closed, per_slice=True)
    out &= inside
    return out


def body_outline(body: np.ndarray, air: np.ndarray) -> np.ndarray:
    """Return ``body`` with its per-slice convex hull on the slices a field of view cuts open.

    A slice is cut open where, on a line of the image border, air lies between two body
    pixels (a lung reaching the border). Elsewhere the body's filled outline already holds
    its lungs, and ``body`` itself is returned (the same object) when no slice is cut open,
    so a series inside its field of view costs no hull.

    Parameters
    ----------
    body : ndarray
        Boolean ``(z, y, x)`` body mask (:func:`body_mask`).
    air : ndarray
        Boolean ``(z, y, x)`` low-density mask.

    Returns
    -------
    ndarray
        Boolean ``(z, y, x)`` mask.
    """
    cut = np.zeros(body.shape[0], dtype=bool)
    for b, a in ((body[:, 0, :], air[:, 0, :]), (body[:, -1, :], air[:, -1, :]),
                 (body[:, :, 0], air[:, :, 0]), (body[:, :, -1], air[:, :, -1])):
        after = np.maximum.accumulate(b, axis=1)
        before = np.maximum.accumulate(b[:, ::-1], axis=1)[:, ::-1]
        cut |= (a & after & before & ~b).any(axis=1)
    if not cut.any():
        return body
    out = body.copy()
    for z in np.flatnonzero(cut):
        out[z] = convex_fill(body[z])
    return out


def cut_lung(
    air: np.ndarray, body_hull: np.ndarray, spacing: tuple[float, float, float]
) -> np.ndarray:
    """Return lung that a cropped field of view cut open to the image border.

    Where the reconstruction field of view cuts through a lung, that lung touches the image
    border, is no hole of the body and so is missing from ``air & body``. Such air lies
    inside the body's outline (its per-slice convex hull), while the air around the patient
    lies mostly outside it (only the air in the outline's concavities is inside).

    Parameters
    ----------
    air : ndarray
        Boolean ``(z, y, x)`` low-density mask of the whole image.
    body_hull : ndarray
        The body's outline with the cut-open slices' hulls (:func:`body_outline`).
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm.

    Returns
    -------
    ndarray
        Boolean mask of the 3-D components of ``air`` that touch the image border in-plane
        and lie at least ``CUT_LUNG_MIN_INSIDE`` inside ``body_hull``.
    """
    border = np.zeros(air.shape, dtype=bool)
    border[:, [0, -1], :] = True
    border[:, :, [0, -1]] = True
    if not (air & border).any():
        return np.zeros(air.shape, dtype=bool)
    labels = sitk.ConnectedComponent(to_image(air.astype(np.uint8), spacing))
    array = sitk.GetArrayViewFromImage(labels)
    touching = np.unique(array[border & air])
    stats = sitk.LabelStatisticsImageFilter()
    stats.Execute(to_image(body_hull.astype(np.uint8), spacing), labels)
    keep = [k for k in touching if k and stats.GetMean(int(k)) >= CUT_LUNG_MIN_INSIDE]
    return np.isin(array, keep) & body_hull if keep else np.zeros(air.shape, dtype=bool)


def _radius(spacing: tuple[float, float, float], mm: float) -> tuple[int, int, int]:
    return (
        max(1, int(round(mm / spacing[2]))),
        max(1, int(round(mm / spacing[1]))),
        max(1, int(round(mm / spacing[0]))),
    )


def bounding_box(mask: np.ndarray, margin: tuple[int, ...] = (0, 8, 8)) -> tuple[slice, ...]:
    """Return the bounding box of ``mask`` grown by ``margin`` voxels, clipped to the array.

    Computed from the projections of the mask on each axis (no index arrays).

    Raises
    ------
    ValueError
        If the mask is empty.
    """
    box = []
    for axis, (grow, size) in enumerate(zip(margin, mask.shape, strict=True)):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other) if other else mask)
        if hits.size == 0:
            raise ValueError("bounding_box: mask is empty")
        box.append(slice(max(0, int(hits[0]) - grow), min(size, int(hits[-1]) + 1 + grow)))
    return tuple(box)


def context_stack(
    volume: np.ndarray, z_positions_mm: np.ndarray, offsets_mm: tuple[float, ...]
) -> np.ndarray:
    """Stack, for every slice, the volume at ``z + offset`` for each offset (2.5D input).

    Values between slices are linearly interpolated; positions beyond the ends take the
    nearest end slice.

    Parameters
    ----------
    volume : ndarray
        ``(z, y, x)`` array (any dtype; the result is float32).
    z_positions_mm : ndarray
        ``(z,)`` slice positions in mm, strictly increasing.
    offsets_mm : tuple of float
        Offsets of the channels in mm.

    Returns
    -------
    ndarray
        ``(z, len(offsets), y, x)`` float32.
    """
    out = np.empty((volume.shape[0], len(offsets_mm), *volume.shape[1:]), dtype=np.float32)
    for c, (lo, hi, w) in enumerate(context_weights(z_positions_mm, offsets_mm, volume.shape[0])):
        if lo is None:
            out[:, c] = volume
            continue
        w = w[:, None, None]
        out[:, c] = volume[lo] * (1.0 - w) + volume[hi] * w
    return out


ContextWeights = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]
"""Per channel: lower and upper source slice of every slice and the upper one's weight (all
None for offset 0, the slice itself)."""


def context_weights(
    z_positions_mm: np.ndarray, offsets_mm: tuple[float, ...], n_slices: int
) -> list[ContextWeights]:
    """Return how :func:`context_stack` interpolates each channel between two slices.

    Parameters
    ----------
    z_positions_mm : ndarray
        ``(n_slices,)`` slice positions in mm, strictly increasing.
    offsets_mm : tuple of float
        Offsets of the channels in mm.
    n_slices : int
        Number of slices of the volume.

    Returns
    -------
    list of ContextWeights
        One ``(lo, hi, w)`` per channel: int index arrays and float32 weights of ``hi``.

    Raises
    ------
    ValueError
        If the positions do not have ``n_slices`` strictly increasing values.
    """
    z = np.asarray(z_positions_mm, dtype=np.float64)
    if z.shape != (n_slices,):
        raise ValueError(f"z_positions_mm must have shape ({n_slices},), got {z.shape}")
    if z.size > 1 and np.any(np.diff(z) <= 0):
        raise ValueError("z_positions_mm must be strictly increasing")
    index = np.arange(z.size, dtype=np.float64)
    weights: list[ContextWeights] = []
    for off in offsets_mm:
        if off == 0.0:
            weights.append((None, None, None))
            continue
        frac = np.interp(z + off, z, index)
        lo = np.floor(frac).astype(int)
        hi = np.minimum(lo + 1, z.size - 1)
        weights.append((lo, hi, (frac - lo).astype(np.float32)))
    return weights


def resample_inplane(
    stack: np.ndarray,
    spacing_yx: tuple[float, float],
    target_mm: float,
    shape_yx: tuple[int, int] | None = None,
    linear: bool = True,
) -> np.ndarray:
    """Resample the last two axes of ``stack`` from ``spacing_yx`` to ``target_mm``.

    Parameters
    ----------
    stack : ndarray
        ``(..., y, x)`` array; leading axes are resampled independently.
    spacing_yx : tuple of float
        Input spacing (mm) of the y and x axes.
    target_mm : float
        Output spacing (mm) of both axes (ignored for the size when ``shape_yx`` is given).
    shape_yx : tuple of int, optional
        Output size; by default the physical extent divided by ``target_mm``.
    linear : bool
        Linear interpolation (True) or nearest neighbour (False).

    Returns
    -------
    ndarray
        ``(..., y', x')`` array of ``stack``'s dtype (float32 for linear).
    """
    lead = stack.shape[:-2]
    h, w = stack.shape[-2:]
    if shape_yx is None:
        shape_yx = resampled_shape((h, w), spacing_yx, target_mm)
    if shape_yx == (h, w):
        return stack.astype(np.float32) if linear else stack.copy()
    flat = stack.reshape(-1, h, w)
    src = sitk.GetImageFromArray(flat.astype(np.float32) if linear else flat)
    src.SetSpacing((float(spacing_yx[1]), float(spacing_yx[0]), 1.0))
    out_spacing = (w * spacing_yx[1] / shape_yx[1], h * spacing_yx[0] / shape_yx[0], 1.0)
    # Pixel centres: keep the physical extent identical (corner-aligned resampling).
    origin = (0.5 * (out_spacing[0] - spacing_yx[1]), 0.5 * (out_spacing[1] - spacing_yx[0]), 0.0)
    interp = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    res = sitk.Resample(
        src, (shape_yx[1], shape_yx[0], flat.shape[0]), sitk.Transform(), interp,
        origin, out_spacing, src.GetDirection(), 0.0, src.GetPixelID(),
    )
    return sitk.GetArrayFromImage(res).reshape(*lead, *shape_yx)


def resampled_shape(
    shape_yx: tuple[int, int], spacing_yx: tuple[float, float], target_mm: float
) -> tuple[int, int]:
    """Return the in-plane size :func:`resample_inplane` gives ``shape_yx`` at ``target_mm``."""
    return (
        max(1, int(round(shape_yx[0] * spacing_yx[0] / target_mm))),
        max(1, int(round(shape_yx[1] * spacing_yx[1] / target_mm))),
    )


def pad_to_multiple(batch: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad the last two axes at the end up to a multiple of ``multiple``.

    Returns
    -------
    padded : ndarray
        The padded array.
    original_yx : tuple of int
        The original height and width, to crop the prediction back.
    """
    h, w = batch.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return batch, (h, w)
    pad = [(0, 0)] * (batch.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(batch, pad), (h, w)


@dataclass
class ModelInput:
    """Model-ready slices of one region of a volume and what is needed to map back.

    Attributes
    ----------
    batch : ndarray
        ``(n, channels, h, w)`` float32, h and w multiples of the spec's ``size_multiple``.
    roi : tuple of slice
        ``(z, y, x)`` region of the native volume the batch covers.
    resampled_yx : tuple of int
        Height and width after in-plane resampling, before padding.
    """

    batch: np.ndarray
    roi: tuple[slice, slice, slice]
    resampled_yx: tuple[int, int]


def prepare_slices(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    z_positions_mm: np.ndarray,
    spec: ModelSpec,
    roi: tuple[slice, slice, slice] | None = None,
) -> ModelInput:
    """Build the model input for the slices of ``roi`` (default: the whole volume).

    One batch of :func:`pipeline.streaming.iter_model_inputs`, so training, crop evaluation
    and the product path share one implementation of the model input. Neighbouring slices
    for 2.5D context are taken from the whole volume, so slices at the edge of the region
    still see their real neighbours.

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm (only y and x are used; z comes from ``z_positions_mm``).
    z_positions_mm : ndarray
        ``(z,)`` strictly increasing slice positions in mm.
    spec : ModelSpec
        The model's sidecar.
    roi : tuple of slice, optional
        ``(z, y, x)`` region to prepare.

    Returns
    -------
    ModelInput
    """
    from pipeline.streaming import iter_model_inputs  # streaming builds on this module

    if roi is None:
        roi = (slice(0, hu.shape[0]), slice(0, hu.shape[1]), slice(0, hu.shape[2]))
    n = roi[0].stop - roi[0].start
    inp = next(iter_model_inputs(hu, spacing, z_positions_mm, spec, roi, batch_size=max(n, 1)))
    return ModelInput(np.ascontiguousarray(inp.batch, dtype=np.float32), roi, inp.resampled_yx)


def restore_probabilities(
    probabilities: np.ndarray, model_input: ModelInput, volume_shape: tuple[int, int, int]
) -> np.ndarray:
    """Map ``(n, 1, h, w)`` model output back onto the native ``(z, y, x)`` grid.

    Voxels outside the model input's region get probability 0.

    Returns
    -------
    ndarray
        float32 ``(z, y, x)`` probabilities aligned with the source volume.
    """
    h, w = model_input.resampled_yx
    prob = probabilities[:, 0, :h, :w]
    roi = model_input.roi
    native_yx = (roi[1].stop - roi[1].start, roi[2].stop - roi[2].start)
    back = resample_inplane(prob, (1.0, 1.0), 1.0, shape_yx=native_yx)
    out = np.zeros(volume_shape, dtype=np.float32)
    out[roi] = back
    return out
