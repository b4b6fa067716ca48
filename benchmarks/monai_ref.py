"""The reference a MONAI user would write: ``monai.networks.nets.UNet`` of comparable size,
``monai.inferers.sliding_window_inference`` over every slice of the whole volume at native
resolution, on the CPU with the same thread count. Weights are random: only speed is compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBE_HW = 320
"""Slice size (pixels) at which FLOPs per slice are counted for matching."""


@dataclass(frozen=True)
class NetSize:
    """Parameters and forward FLOPs of a 2D network on one ``PROBE_HW``-square slice."""

    params: int
    gflop_per_slice: float


def measure_size(module: object, in_channels: int, hw: int = PROBE_HW) -> NetSize:
    """Count parameters and forward FLOPs (``torch.utils.flop_counter``) of ``module``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(torch.rand(1, in_channels, hw, hw))
    return NetSize(int(params), counter.get_total_flops() / 1e9)


def our_size(model_path: Path, in_channels: int) -> NetSize:
    """Size of the exported model (its ``.pt2`` beside the ``.onnx``)."""
    import torch

    module = torch.export.load(str(Path(model_path).with_suffix(".pt2"))).module()
    return measure_size(module, in_channels)


def monai_unet(in_channels: int, base: int) -> object:
    """MONAI 2D UNet, 5 levels ``(b, 2b, 4b, 8b, 8b)``, 2 residual units (MONAI's usual)."""
    from monai.networks.nets import UNet

    channels = (base, 2 * base, 4 * base, 8 * base, 8 * base)
    return UNet(spatial_dims=2, in_channels=in_channels, out_channels=1, channels=channels,
                strides=(2, 2, 2, 2), num_res_units=2).eval()


def matched_unet(in_channels: int, target: NetSize, match: str = "flops") -> tuple[object, int]:
    """Return the MONAI UNet whose FLOPs (or parameters) per slice are closest to ``target``.

    Raises
    ------
    ValueError
        If ``match`` is not ``'flops'`` or ``'params'``.
    """
    if match not in ("flops", "params"):
        raise ValueError(f"match must be 'flops' or 'params', got {match!r}")
    best: tuple[float, object, int] | None = None
    for base in (8, 16, 24, 32, 40, 48, 64):
        net = monai_unet(in_channels, base)
        size = measure_size(net, in_channels)
        mine = size.gflop_per_slice if match == "flops" else size.params
        goal = target.gflop_per_slice if match == "flops" else target.params
        gap = abs(np.log(mine / goal))
        if best is None or gap < best[0]:
            best = (gap, net, base)
    return best[1], best[2]


def run_reference(
    hu: np.ndarray, z_positions_mm: np.ndarray, spec: object, net: object, threads: int,
    roi: int = 256, sw_batch_size: int = 8, overlap: float = 0.25, max_slices: int | None = None,
) -> dict[str, float]:
    """Time MONAI's sliding-window inference over the whole volume (all slices, native grid).

    Parameters
    ----------
    hu : ndarray
        ``(z, y, x)`` CT in HU.
    z_positions_mm : ndarray
        Slice positions (for the same 2.5D channels as our model).
    spec : ModelSpec
        Our model's sidecar (HU window and slice offsets, so the input is the same).
    net : torch.nn.Module
        The MONAI network.
    threads : int
        ``torch.set_num_threads``.
    roi, sw_batch_size, overlap
        ``sliding_window_inference`` settings (MONAI defaults for overlap).
    max_slices : int, optional
        Time only this many central slices and scale to the whole volume (long on 2 cores).

    Returns
    -------
    dict
        ``seconds`` (whole volume, measured or scaled), ``slices``, ``measured_slices``,
        ``prep_seconds`` (windowing and 2.5D stacking, whole volume).
    """
    import torch
    from monai.inferers import sliding_window_inference

    from pipeline.preprocess import context_stack, hu_to_unit

    torch.set_num_threads(threads)
    n = hu.shape[0]
    start = time.perf_counter()
    stack = context_stack(hu_to_unit(hu, spec.hu_window), z_positions_mm, spec.slice_offsets_mm)
    prep = time.perf_counter() - start
    lo, hi = 0, n
    if max_slices is not None and max_slices < n:
        lo = (n - max_slices) // 2
        hi = lo + max_slices
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(lo, hi, sw_batch_size):
            x = torch.from_numpy(stack[i:min(hi, i + sw_batch_size)])
            torch.sigmoid(sliding_window_inference(x, (roi, roi), sw_batch_size, net,
                                                   overlap=overlap))
    seconds = time.perf_counter() - start
    return {"seconds": seconds * n / (hi - lo), "slices": n, "measured_slices": hi - lo,
            "prep_seconds": prep}
