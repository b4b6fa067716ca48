"""TensorRT backend: builds an FP16 engine from the ONNX model once, then reuses it.

The built engine is cached on disk under a key made of the GPU name and compute capability,
the TensorRT version, the model's SHA-256, the optimisation profile and the precision
(:mod:`engines.trt_cache`); a change of any of them builds a new engine and removes the stale
one. Device buffers are PyTorch CUDA tensors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine
from engines.errors import EngineError
from engines.trt_cache import (
    Profile,
    cache_key,
    default_cache_dir,
    engine_file,
    file_sha256,
    stale_engines,
)

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 2 << 30


def _import_backends() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError(
            "the tensorrt engine needs TensorRT: pip install 'lungseg[tensorrt]'"
        ) from exc
    try:
        import torch
    except ImportError as exc:
        raise EngineError("the tensorrt engine needs PyTorch with CUDA for its buffers: "
                          "pip install 'lungseg[tensorrt]'") from exc
    if not torch.cuda.is_available():
        raise EngineError("the tensorrt engine needs a CUDA device; PyTorch sees none")
    return trt, torch


class TensorRTEngine(Engine):
    """Run the model with a cached TensorRT engine.

    Parameters
    ----------
    model_path : str or Path
        The ``.onnx`` model (sidecar next to it).
    fp16 : bool
        Allow FP16 kernels (default True).
    profile : Profile, optional
        Optimisation profile; default batch 1-64 (tuned for 32) and h/w from
        ``size_multiple`` to 768 (tuned for 320).
    cache_dir : str or Path, optional
        Engine cache folder; default :func:`engines.trt_cache.default_cache_dir`.

    Raises
    ------
    EngineError
        If TensorRT, PyTorch or a CUDA device is missing, or the build fails.
    """

    name = "tensorrt"
    OPTIONS = ("fp16", "profile", "cache_dir")

    def __init__(
        self, model_path: str | Path, fp16: bool = True, profile: Profile | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(model_path)
        self._trt, self._torch = _import_backends()
        self.fp16 = bool(fp16)
        self.profile = profile or Profile(
            channels=self.spec.in_channels, min_hw=self.spec.size_multiple
        )
        if self.profile.channels != self.spec.in_channels:
            raise ValueError(f"profile channels must be {self.spec.in_channels}, "
                             f"got {self.profile.channels}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.rebuilt = False
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)
        self._engine = self._load_or_build()
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names
                  if self._engine.get_tensor_mode(n) == self._trt.TensorIOMode.INPUT]
        self._input = inputs[0]
        self._output = next(n for n in names if n not in inputs)

    def current_key(self) -> str:
        """Return the cache key for this GPU, TensorRT version, model and settings."""
        props = self._torch.cuda.get_device_properties(self._torch.cuda.current_device())
        return cache_key(
            props.name, f"{props.major}.{props.minor}", self._trt.__version__,
            file_sha256(self.model_path), self.profile, self.fp16,
        )

    def _load_or_build(self) -> Any:
        key = self.current_key()
        path = engine_file(self.cache_dir, self.model_path.stem, key)
        self.engine_path = path
        runtime = self._runtime = self._trt.Runtime(self._logger)  # must outlive the engine
        if path.is_file():
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is not None:
                log.info("tensorrt: loaded cached engine %s", path)
                return engine
            log.warning("tensorrt: cached engine %s unreadable, rebuilding", path)
        serialized = self._build()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(serialized)
        tmp.replace(path)
        for stale in stale_engines(self.cache_dir, self.model_path.stem, key):
            stale.unlink(missing_ok=True)
        self.rebuilt = True
        return runtime.deserialize_cuda_engine(serialized)

    def _build(self) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self.model_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"TensorRT could not parse {self.model_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        profile.set_shape(network.get_input(0).name, *self.profile.shapes())
        config.add_optimization_profile(profile)
        log.info("tensorrt: building engine for %s (takes a while once)", self.model_path.name)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineError(f"TensorRT failed to build an engine for {self.model_path}")
        return bytes(serialized)

    def infer_tensor(self, batch: Any) -> Any:
        """Run a contiguous float32 CUDA tensor ``(n, c, h, w)`` with ``n <= max_batch``."""
        torch = self._torch
        x = batch.to(device="cuda", dtype=torch.float32).contiguous()
        self._context.set_input_shape(self._input, tuple(x.shape))
        out = torch.empty(tuple(self._context.get_tensor_shape(self._output)),
                          dtype=torch.float32, device=x.device)
        self._context.set_tensor_address(self._input, x.data_ptr())
        self._context.set_tensor_address(self._output, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise EngineError(f"TensorRT execution failed for input {tuple(x.shape)}")
        return out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Return ``(n, 1, h, w)`` probabilities; batches above ``max_batch`` run in chunks.

        Raises
        ------
        ValueError
            If the batch shape does not match the model or its h/w is outside the profile.
        """
        batch = self.check_batch(batch)
        n, c, h, w = batch.shape
        if not self.profile.accepts((1, c, h, w)):
            raise ValueError(f"batch h/w {h}x{w} outside the TensorRT profile "
                             f"[{self.profile.min_hw}, {self.profile.max_hw}]")
        torch = self._torch
        x = torch.from_numpy(batch).pin_memory().to("cuda", non_blocking=True)
        step = self.profile.max_batch
        outs = [self.infer_tensor(x[i:i + step]) for i in range(0, n, step)]
        return torch.cat(outs).cpu().numpy()

    def describe(self) -> str:
        """Return backend, precision and cached engine file."""
        return f"tensorrt ({'fp16' if self.fp16 else 'fp32'}, {self.engine_path.name})"

    def close(self) -> None:
        """Drop the execution context and engine."""
        self._context = None
        self._engine = None
