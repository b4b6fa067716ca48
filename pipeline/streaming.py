"""Model input built, and model output mapped back, one slice batch at a time.

:func:`pipeline.preprocess.prepare_slices` materialises the 2.5D input of a whole region
(channels x slices x rows x columns in float32) before the model sees the first slice. Here
each source slice is cropped, normalised and resampled once, kept only while a batch needs it,
and the context channels are interpolated on the resampled grid; the model output of a batch is
thresholded on the native grid right away. Memory stays at a few batches and the result is that
of ``prepare_slices`` / ``restore_probabilities`` up to float rounding (resampling and the
linear interpolation between slices commute).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from engines.spec import ModelSpec
from pipeline.preprocess import (
    ModelInput,
    context_weights,
    hu_to_unit,
    resample_inplane,
    resampled_shape,
)


def iter_model_inputs(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    z_positions_mm: np.ndarray,
    spec: ModelSpec,
    roi: tuple[slice, slice, slice],
    batch_size: int = 8,
) -> Iterator[ModelInput]:
    """Yield the model input of ``roi`` in batches of at most ``batch_size`` slices.

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    spacing : tuple of float
        ``(z, y, x)`` spacing in mm (only y and x are used).
    z_positions_mm : ndarray
        ``(z,)`` strictly increasing slice positions in mm.
    spec : ModelSpec
        The model's sidecar.
    roi : tuple of slice
        ``(z, y, x)`` region with explicit starts and stops; context slices come from the
        whole volume.
    batch_size : int
        Slices per batch.

    Yields
    ------
    ModelInput
        ``roi`` of each batch covers its own slices.

    Raises
    ------
    ValueError
        If ``batch_size`` < 1 or the positions do not match ``hu``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    weights = context_weights(z_positions_mm, spec.slice_offsets_mm, hu.shape[0])
    cache = _ResampledSlices(hu, spacing, spec, roi)
    h, w = cache.shape_yx
    shape = (len(weights), h + (-h) % spec.size_multiple, w + (-w) % spec.size_multiple)
    for start in range(roi[0].start, roi[0].stop, batch_size):
        own = np.arange(start, min(start + batch_size, roi[0].stop))
        cache.keep(_sources(weights, own))
        batch = np.zeros((own.size, *shape), dtype=np.float32)
        for c, (lo, hi, frac) in enumerate(weights):
            if lo is None:
                batch[:, c, :h, :w] = cache.get(own)
                continue
            k = frac[own][:, None, None]
            batch[:, c, :h, :w] = cache.get(lo[own]) * (1.0 - k) + cache.get(hi[own]) * k
        yield ModelInput(batch, (slice(start, own[-1] + 1), roi[1], roi[2]), (h, w))


def _sources(weights: list, own: np.ndarray) -> np.ndarray:
    """Source slices the channels of the slices ``own`` read."""
    parts = [own] + [idx[own] for lo, hi, _ in weights if lo is not None for idx in (lo, hi)]
    return np.unique(np.concatenate(parts))


class _ResampledSlices:
    """Cropped, normalised, resampled slices of a volume, computed once and dropped early."""

    def __init__(
        self,
        hu: np.ndarray,
        spacing: tuple[float, float, float],
        spec: ModelSpec,
        roi: tuple[slice, slice, slice],
    ) -> None:
        self.hu, self.spec, self.roi = hu, spec, roi
        self.spacing_yx = (spacing[1], spacing[2])
        native = (roi[1].stop - roi[1].start, roi[2].stop - roi[2].start)
        self.shape_yx = resampled_shape(native, self.spacing_yx, spec.pixel_spacing_mm)
        self.slices: dict[int, np.ndarray] = {}

    def keep(self, needed: np.ndarray) -> None:
        """Compute the ``needed`` slices not held yet; drop those below the lowest one."""
        for k in [k for k in self.slices if k < needed[0]]:
            del self.slices[k]
        missing = [int(k) for k in needed if int(k) not in self.slices]
        if not missing:
            return
        unit = hu_to_unit(self.hu[:, self.roi[1], self.roi[2]][missing], self.spec.hu_window)
        out = resample_inplane(
            unit, self.spacing_yx, self.spec.pixel_spacing_mm, shape_yx=self.shape_yx
        )
        self.slices.update(zip(missing, out, strict=True))

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Return the held slices ``indices`` as one ``(n, h, w)`` array."""
        return np.stack([self.slices[int(k)] for k in indices])


def restore_mask(
    probabilities: np.ndarray, model_input: ModelInput, threshold: float
) -> np.ndarray:
    """Map ``(n, 1, h, w)`` model output of one batch to its native region and threshold it.

    Slices whose largest probability is not above ``threshold`` are not resampled: linear
    interpolation cannot exceed the largest input value.

    Returns
    -------
    ndarray
        Boolean mask of the shape of ``model_input.roi``.
    """
    h, w = model_input.resampled_yx
    roi = model_input.roi
    native = (roi[1].stop - roi[1].start, roi[2].stop - roi[2].start)
    out = np.zeros((roi[0].stop - roi[0].start, *native), dtype=bool)
    prob = probabilities[:, 0, :h, :w]
    hits = np.flatnonzero(prob.max(axis=(1, 2)) > threshold)
    if hits.size:
        back = resample_inplane(prob[hits], (1.0, 1.0), 1.0, shape_yx=native)
        out[hits] = back > threshold
    return out
