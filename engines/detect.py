"""Probe which backends this machine can run, without importing them when avoidable.

:func:`choose_auto` is the policy behind ``create_engine("auto")``: TensorRT when it is
importable and a CUDA GPU exists, then PyTorch on CUDA, then ONNX Runtime on the CPU. The
probes are cheap (``importlib.util.find_spec`` and the CUDA driver through ``ctypes``) so that
picking a backend does not load a framework that will not be used.
"""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass


def module_available(name: str) -> bool:
    """Return True when ``name`` can be imported (checked without importing it).

    Parameters
    ----------
    name : str
        Top-level module name, e.g. ``"tensorrt"``.
    """
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cuda_device_count() -> int:
    """Return the number of CUDA devices the NVIDIA driver reports (0 without a driver).

    Uses ``libcuda`` directly (``cuInit`` + ``cuDeviceGetCount``) so no framework is imported.
    """
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


@dataclass(frozen=True)
class Probe:
    """What :func:`probe` found on this machine."""

    tensorrt: bool
    torch: bool
    cuda_devices: int


def probe() -> Probe:
    """Look for TensorRT, PyTorch and CUDA devices."""
    return Probe(
        tensorrt=module_available("tensorrt"),
        torch=module_available("torch"),
        cuda_devices=cuda_device_count(),
    )


def auto_order(found: Probe) -> list[tuple[str, str]]:
    """Backends to try for ``auto``, best first, each with the reason it is a candidate.

    Parameters
    ----------
    found : Probe
        Result of :func:`probe`.

    Returns
    -------
    list of (str, str)
        ``(kind, reason)`` pairs; the last one is always ``"onnx"`` (ONNX Runtime CPU).
    """
    order: list[tuple[str, str]] = []
    if found.cuda_devices > 0:
        gpus = f"{found.cuda_devices} CUDA device(s) found"
        if found.tensorrt:
            order.append(("tensorrt", f"TensorRT importable and {gpus}"))
        if found.torch:
            order.append(("torch", f"PyTorch importable and {gpus}"))
        cpu_reason = "no GPU backend could be loaded: ONNX Runtime on the CPU"
    else:
        cpu_reason = "no CUDA device found: ONNX Runtime on the CPU"
    order.append(("onnx", cpu_reason))
    return order
