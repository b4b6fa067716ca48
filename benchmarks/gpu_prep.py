"""The model path of the pipeline on a torch device, for machines without SimpleITK.

Same steps as :func:`pipeline.preprocess.prepare_slices` / ``restore_probabilities`` (HU
window, 2.5D context by linear interpolation along z, in-plane resampling to the model's
spacing, padding to ``size_multiple``, and back), written with torch so that they run on the
GPU. Bilinear resampling uses ``align_corners=False`` (pixel-centre aligned, as the SimpleITK
version); values near the image border differ slightly. No lung crop: every slice is sent.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def context_indices(z_positions_mm: np.ndarray, offset_mm: float) -> tuple[np.ndarray, ...]:
    """Lower/upper slice index and weight of ``z + offset`` for every slice (clamped)."""
    z = np.asarray(z_positions_mm, dtype=np.float64)
    frac = np.interp(z + offset_mm, z, np.arange(z.size, dtype=np.float64))
    lo = np.floor(frac).astype(np.int64)
    hi = np.minimum(lo + 1, z.size - 1)
    return lo, hi, (frac - lo).astype(np.float32)


def resampled_size(shape_yx: tuple[int, int], spacing_yx: tuple[float, float],
                   target_mm: float) -> tuple[int, int]:
    """In-plane size after resampling (same rounding as ``resample_inplane``)."""
    return tuple(max(1, int(round(n * s / target_mm))) for n, s in zip(shape_yx, spacing_yx,
                                                                         strict=True))


def prepare(hu: Any, z_positions_mm: np.ndarray, spacing: tuple[float, float, float],
            spec: Any) -> tuple[Any, tuple[int, int]]:
    """Return the ``(z, C, h, w)`` float32 model input on ``hu``'s device and the size
    before padding."""
    import torch
    import torch.nn.functional as F

    lo_hu, hi_hu = spec.hu_window
    unit = (hu.float().clamp_(lo_hu, hi_hu) - lo_hu) * (1.0 / (hi_hu - lo_hu))
    channels = []
    for off in spec.slice_offsets_mm:
        lo, hi, w = (torch.as_tensor(a, device=hu.device)
                     for a in context_indices(z_positions_mm, off))
        w = w[:, None, None]
        channels.append(unit[lo] * (1 - w) + unit[hi] * w)
    stack = torch.stack(channels, dim=1)
    size = resampled_size(tuple(hu.shape[1:]), spacing[1:], spec.pixel_spacing_mm)
    stack = F.interpolate(stack, size=size, mode="bilinear", align_corners=False)
    m = spec.size_multiple
    return F.pad(stack, (0, (-size[1]) % m, 0, (-size[0]) % m)), size


def restore(prob: Any, size: tuple[int, int], native_yx: tuple[int, int], threshold: float) -> Any:
    """Crop the padding, resample to the native grid and threshold: ``(z, y, x)`` bool."""
    import torch.nn.functional as F

    prob = prob[:, :, : size[0], : size[1]].float()
    back = F.interpolate(prob, size=native_yx, mode="bilinear", align_corners=False)
    return back[:, 0] > threshold


def segment_volume(hu: np.ndarray, z_positions_mm: np.ndarray,
                   spacing: tuple[float, float, float], engine: Any, device: Any,
                   batch_size: int) -> np.ndarray:
    """HU volume in host memory -> lesion mask in host memory, everything between on
    ``device`` with a :class:`engines.torch_engine.TorchEngine` (or any engine with
    ``infer_tensor``)."""
    import torch

    volume = torch.from_numpy(np.ascontiguousarray(hu)).to(device, non_blocking=True)
    batch, size = prepare(volume, z_positions_mm, spacing, engine.spec)
    probs = torch.cat([engine.infer_tensor(batch[i:i + batch_size])
                       for i in range(0, batch.shape[0], batch_size)])
    return restore(probs, size, tuple(hu.shape[1:]), engine.spec.threshold).cpu().numpy()
