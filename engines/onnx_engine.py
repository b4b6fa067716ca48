"""ONNX Runtime backend (CPU by default)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.base import Engine
from pipeline.errors import EngineError

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def _level(ort: object, optimization: str) -> object:
    levels = ort.GraphOptimizationLevel
    return {
        "disable": levels.ORT_DISABLE_ALL,
        "basic": levels.ORT_ENABLE_BASIC,
        "extended": levels.ORT_ENABLE_EXTENDED,
        "all": levels.ORT_ENABLE_ALL,
    }[optimization]


def resolve_threads(threads: int | None) -> int:
    """Return ``threads`` or, when None, the number of cores this process may use.

    Raises
    ------
    ValueError
        If ``threads`` is not a positive integer.
    """
    if threads is None:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - non-Linux
            return os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


class OnnxEngine(Engine):
    """Run the model with ONNX Runtime.

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` file (sidecar next to it). An int8 model made by
        :func:`engines.quantize.quantize_int8` loads the same way.
    threads : int, optional
        Intra-op threads; default all cores this process may use.
    providers : list of str, optional
        Execution providers; default CPU only.
    optimization : {'all', 'extended', 'basic', 'disable'}
        Graph optimisation level (default ``all``).

    Raises
    ------
    ValueError
        If ``threads`` or ``optimization`` is invalid.
    EngineError
        If ONNX Runtime is missing or cannot load the model.
    """

    name = "onnx"
    OPTIONS = ("threads", "providers", "optimization")

    def __init__(
        self, model_path: str | Path, threads: int | None = None,
        providers: list[str] | None = None, optimization: str = "all",
    ) -> None:
        super().__init__(model_path)
        self.threads = resolve_threads(threads)
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(
                f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}"
            )
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - base dependency
            raise EngineError("onnxruntime is not installed: pip install lungseg") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = _level(ort, optimization)
        self.providers = list(providers or ["CPUExecutionProvider"])
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), options, providers=self.providers
            )
        except Exception as exc:
            raise EngineError(f"ONNX Runtime could not load {self.model_path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Return ``(n, 1, h, w)`` probabilities for a ``(n, c, h, w)`` batch.

        Raises
        ------
        ValueError
            If the batch shape does not match the model.
        EngineError
            If the engine was closed.
        """
        batch = self.check_batch(batch)
        if self._session is None:
            raise EngineError("OnnxEngine.infer called after close()")
        (out,) = self._session.run(None, {self._input: batch})
        return out

    def describe(self) -> str:
        """Return backend, providers and thread count."""
        return f"onnx ({','.join(self.providers)}, {self.threads} threads)"

    def close(self) -> None:
        """Drop the session."""
        self._session = None
