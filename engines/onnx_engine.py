"""ONNX Runtime backend (CPU by default)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from engines.base import Engine
from engines.errors import EngineError
from engines.quantize import int8_path
from engines.spec import read_spec, sidecar_path
from engines.trt_cache import file_sha256

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
PRECISIONS = ("auto", "fp32", "int8")

log = logging.getLogger(__name__)


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


def is_int8(model_path: str | Path) -> bool:
    """Return True when the sidecar of ``model_path`` records an int8 quantisation."""
    return "quantization" in read_spec(model_path).extra


def int8_sibling_problem(model_path: str | Path) -> str | None:
    """Why ``<stem>-int8.onnx`` beside ``model_path`` cannot stand in for it (None: it can).

    It can when it and its sidecar exist and the sidecar records the SHA-256 of exactly
    this fp32 file (:func:`engines.quantize.quantize_int8` writes it).
    """
    sibling = int8_path(model_path)
    if not sibling.is_file() or not sidecar_path(sibling).is_file():
        return f"no int8 model {sibling.name} with its sidecar beside {Path(model_path).name}"
    source = read_spec(sibling).extra.get("quantization", {}).get("source_sha256")
    if source != file_sha256(model_path):
        return f"{sibling.name} was not quantised from this {Path(model_path).name}"
    return None


def select_model_file(model_path: str | Path, precision: str = "auto") -> Path:
    """Return the file to load for ``precision``.

    ``fp32`` loads ``model_path``; ``int8`` its quantised sibling ``<stem>-int8.onnx``
    (made by ``python -m benchmarks.quantize``); ``auto`` the sibling when it was quantised
    from exactly this file, else ``model_path``. A model that is itself int8 is loaded as is
    by ``auto`` and ``int8``.

    Raises
    ------
    ValueError
        If ``precision`` is not one of :data:`PRECISIONS`.
    EngineError
        If ``int8`` is asked for and no matching sibling exists, or ``fp32`` for an int8
        model.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    path = Path(model_path)
    if is_int8(path):
        if precision == "fp32":
            raise EngineError(f"{path.name} is an int8 model; precision=fp32 needs the fp32 one")
        return path
    if precision == "fp32":
        return path
    problem = int8_sibling_problem(path)
    if problem is None:
        return int8_path(path)
    if precision == "int8":
        raise EngineError(f"precision=int8: {problem} (make it with python -m benchmarks.quantize)")
    log.info("onnx engine: fp32 model (%s)", problem)
    return path


class OnnxEngine(Engine):
    """Run the model with ONNX Runtime.

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` file (sidecar next to it). An int8 model made by
        :func:`engines.quantize.quantize_int8` loads the same way.
    precision : {'auto', 'fp32', 'int8'}
        Which file runs (:func:`select_model_file`): by default the int8 version beside the
        model when it was quantised from exactly that file.
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
    OPTIONS = ("threads", "providers", "optimization", "precision")

    def __init__(
        self, model_path: str | Path, threads: int | None = None,
        providers: list[str] | None = None, optimization: str = "all",
        precision: str = "auto",
    ) -> None:
        super().__init__(select_model_file(model_path, precision))
        self.precision = "int8" if "quantization" in self.spec.extra else "fp32"
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
        """Return backend, providers, thread count and precision."""
        return f"onnx ({','.join(self.providers)}, {self.threads} threads, {self.precision})"

    def close(self) -> None:
        """Drop the session."""
        self._session = None
