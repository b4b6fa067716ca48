"""PyTorch backend: runs the exported ``<model>.pt2`` (``torch.export``) on CPU or CUDA.

The trainer's ``export`` writes ``model.onnx``, ``model.pt2`` and ``model.json`` side by side;
this engine loads the ExportedProgram with ``torch.export.load(...).module()``. On CUDA it can
run in fp16 or bf16, channels-last, and optionally through ``torch.compile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine
from engines.errors import EngineError

DTYPES = ("fp32", "fp16", "bf16")


def pt2_path(model_path: str | Path) -> Path:
    """Return the ExportedProgram file that sits next to ``model_path`` (same stem, ``.pt2``)."""
    return Path(model_path).with_suffix(".pt2")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise EngineError(
            "the torch engine needs PyTorch: pip install 'lungseg[train]'"
        ) from exc
    return torch


def _resolve_device(torch: Any, device: str | None) -> Any:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} requested but PyTorch sees no CUDA device")
    return torch.device(device)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: bool | str | None) -> str | None:
    """Return the ``torch.compile`` mode for the ``compile`` option (None: no compilation).

    Raises
    ------
    ValueError
        If ``value`` is neither a bool nor one of :data:`COMPILE_MODES`.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if value in COMPILE_MODES:
        return str(value)
    raise ValueError(f"compile must be true, false or one of {COMPILE_MODES}, got {value!r}")


class TorchEngine(Engine):
    """Run the exported model with PyTorch.

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` model path; the ``.pt2`` with the same stem is loaded.
    device : str, optional
        ``'auto'`` (CUDA when available, default), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
    dtype : {'fp32', 'fp16', 'bf16'}
        Weights and activations precision; outputs are always float32.
    channels_last : bool, optional
        NHWC memory format; default True on CUDA, False on CPU.
    compile : bool or str
        Wrap the module in ``torch.compile`` (first calls per shape are slow): True or
        ``'default'``, or another mode of :data:`COMPILE_MODES` (``'max-autotune'`` benchmarks
        kernels while compiling and was the fastest on an H200, see docs/performance.md).
    threads : int, optional
        CPU threads (``torch.set_num_threads``, process-wide); default all cores.

    Raises
    ------
    ValueError
        If ``device`` or ``dtype`` is invalid.
    EngineError
        If PyTorch is missing, the ``.pt2`` is missing or cannot be loaded, or CUDA was
        requested without a CUDA device.
    """

    name = "torch"
    OPTIONS = ("device", "dtype", "channels_last", "compile", "threads")

    def __init__(
        self, model_path: str | Path, device: str | None = None, dtype: str = "fp32",
        channels_last: bool | None = None, compile: bool | str = False,
        threads: int | None = None,
    ) -> None:
        super().__init__(model_path)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        torch = self._torch = _import_torch()
        self.device = _resolve_device(torch, device)
        self.dtype_name = dtype
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        if self.device.type == "cpu":
            from engines.onnx_engine import resolve_threads

            torch.set_num_threads(resolve_threads(threads))
        module = self._load(pt2_path(self.model_path))
        module = module.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.compile_mode = compile_mode(compile)
        self._module = (torch.compile(module, mode=self.compile_mode) if self.compile_mode
                        else module)

    def _load(self, path: Path) -> Any:
        if not path.is_file():
            raise EngineError(
                f"torch engine needs the exported program {path} next to {self.model_path.name}"
                " (written by `trainer export`)"
            )
        try:
            return self._torch.export.load(str(path)).module()
        except Exception as exc:
            raise EngineError(f"torch.export.load could not load {path}: {exc}") from exc

    def infer_tensor(self, batch: Any) -> Any:
        """Run the model on a tensor already on :attr:`device`; returns the raw output tensor.

        The input is cast to the engine's dtype and memory format; no validation beyond
        that (use :meth:`infer` for checked numpy input).
        """
        torch = self._torch
        x = batch.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._module(x)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Return ``(n, 1, h, w)`` float32 probabilities for a ``(n, c, h, w)`` batch.

        Raises
        ------
        ValueError
            If the batch shape does not match the model.
        EngineError
            If the engine was closed or the model fails on this input.
        """
        batch = self.check_batch(batch)
        if self._module is None:
            raise EngineError("TorchEngine.infer called after close()")
        x = self._torch.from_numpy(batch)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        try:
            out = self.infer_tensor(x)
        except Exception as exc:
            raise EngineError(f"torch engine failed on input {batch.shape}: {exc}") from exc
        return out.float().cpu().numpy()

    def describe(self) -> str:
        """Return backend, device, precision, memory format and compile flag."""
        layout = "channels-last" if self.channels_last else "NCHW"
        extra = f", compiled {self.compile_mode}" if self.compile_mode else ""
        return f"torch ({self.device}, {self.dtype_name}, {layout}{extra})"

    def close(self) -> None:
        """Drop the module and release cached CUDA memory."""
        self._module = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()
