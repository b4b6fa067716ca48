"""Roofline figures for the GPU check: timing on a torch device, the model's FLOPs and
activation traffic per slice, and measured compute and memory-bandwidth ceilings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def sync(torch: Any, device: Any) -> None:
    """Wait for queued work on ``device`` (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, torch: Any, device: Any, min_seconds: float, warmup: int = 2) -> float:
    """Seconds per call of ``fn`` (mean over at least ``min_seconds``)."""
    for _ in range(warmup):
        fn()
    sync(torch, device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        sync(torch, device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 3:
            return elapsed / calls


def flops_per_slice(module_path: Path, shape: tuple[int, ...], torch: Any) -> float:
    """Forward FLOPs for one slice of ``shape`` (torch.utils.flop_counter, on the CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    module = torch.export.load(str(module_path)).module()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(torch.rand(1, *shape[1:]))
    return float(counter.get_total_flops())


def activation_bytes(module_path: Path, shape: tuple[int, ...], torch: Any) -> float:
    """Bytes of every intermediate tensor one fp32 slice produces (each written once and
    read at least once: twice this, halved for fp16/bf16, is the least memory traffic)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor):
                    _Count.total += leaf.numel() * leaf.element_size()
            return out

    module = torch.export.load(str(module_path)).module()
    with torch.inference_mode(), _Count():
        module(torch.rand(1, *shape[1:]))
    return float(_Count.total)


def copy_bandwidth(torch: Any, device: Any, seconds: float) -> float:
    """Measured device memory bandwidth (bytes read + written per second)."""
    n = (1 << 28) if device.type == "cuda" else (1 << 24)
    a = torch.empty(n, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / timed(lambda: b.copy_(a), torch, device, seconds)


def matmul_peak(torch: Any, device: Any, dtype: Any, n: int, seconds: float) -> float:
    """Measured dense matmul rate (FLOP/s) for ``dtype``: the compute ceiling."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    per_call = timed(lambda: a @ b, torch, device, seconds)
    return 2 * n**3 / per_call


def limits(model: Path, batch: Any, torch: Any, device: Any, dtypes: list[str],
           seconds: float) -> dict:
    """FLOPs per slice and the compute-bound slices/s per dtype (measured matmul peak)."""
    flops = flops_per_slice(model.with_suffix(".pt2"), tuple(batch.shape), torch)
    n = 4096 if device.type == "cuda" else 512
    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    out = {"input_hw": list(batch.shape[2:]), "gflop_per_slice": flops / 1e9}
    traffic = 2 * activation_bytes(model.with_suffix(".pt2"), tuple(batch.shape), torch)
    bandwidth = copy_bandwidth(torch, device, seconds)
    out.update(activation_traffic_mb_fp32=traffic / 1e6, bandwidth_gbs=bandwidth / 1e9)
    print(f"model: {flops / 1e9:.2f} GFLOP per slice at {tuple(batch.shape[2:])}; activation "
          f"traffic (unfused) >= {traffic / 1e6:.0f} MB (fp32) per slice; copy bandwidth "
          f"{bandwidth / 1e9:.0f} GB/s -> memory-bound limit {bandwidth / traffic:.0f} "
          f"slices/s (fp32), {2 * bandwidth / traffic:.0f} (fp16/bf16)")
    out["memory_bound_slices_per_s_fp32"] = bandwidth / traffic
    for half in ("fp16", "bf16"):
        out[f"memory_bound_slices_per_s_{half}"] = 2 * bandwidth / traffic
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    out["fp32_convolutions_use_tf32"] = tf32
    for dtype in dtypes:
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32 and dtype == "fp32"
        try:
            peak = matmul_peak(torch, device, names[dtype], n, seconds)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        out[f"peak_tflops_{dtype}"] = peak / 1e12
        out[f"compute_bound_slices_per_s_{dtype}"] = peak / flops
        label = "fp32 (TF32)" if tf32 and dtype == "fp32" else dtype
        print(f"  {label}: dense matmul {peak / 1e12:8.1f} TFLOP/s -> compute-bound limit "
              f"{peak / flops:10.0f} slices/s")
    return out
