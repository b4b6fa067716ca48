"""ONNX Runtime backend (CPU by default)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.base import Engine
from pipeline.errors import EngineError


class OnnxEngine(Engine):
    """Run the model with ONNX Runtime.

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` file (sidecar next to it).
    threads : int, optional
        Intra-op threads; default all cores.
    providers : list of str, optional
        Execution providers; default CPU only.
    """

    name = "onnx"

    def __init__(
        self, model_path: str | Path, threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        super().__init__(model_path)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - base dependency
            raise EngineError("onnxruntime is not installed: pip install lungseg") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EngineError(f"ONNX Runtime could not load {self.model_path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Return ``(n, 1, h, w)`` probabilities for a ``(n, c, h, w)`` batch."""
        batch = self.check_batch(batch)
        (out,) = self._session.run(None, {self._input: batch})
        return out

    def close(self) -> None:
        """Drop the session."""
        self._session = None
