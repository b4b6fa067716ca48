"""Cache of built TensorRT engines: keys and paths (pure functions, no TensorRT import).

A serialized TensorRT engine is only valid for the GPU model and TensorRT version it was built
with, and for the exact ONNX model and build settings. The cache key hashes all of these, so a
change of any of them selects a different file and the engine is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_ENV = "LUNGSEG_TRT_CACHE"


@dataclass(frozen=True)
class Profile:
    """Optimisation profile: input shape ranges the engine accepts.

    Attributes
    ----------
    channels : int
        Input channels (fixed).
    min_batch, opt_batch, max_batch : int
        Batch size range and the size TensorRT tunes for.
    min_hw, opt_hw, max_hw : int
        Height/width range (square bounds applied to each) and the size tuned for.
    """

    channels: int
    min_batch: int = 1
    opt_batch: int = 32
    max_batch: int = 64
    min_hw: int = 16
    opt_hw: int = 320
    max_hw: int = 768

    def __post_init__(self) -> None:
        for lo, mid, hi, what in (
            (self.min_batch, self.opt_batch, self.max_batch, "batch"),
            (self.min_hw, self.opt_hw, self.max_hw, "hw"),
        ):
            if not 1 <= lo <= mid <= hi:
                raise ValueError(
                    f"profile {what} must satisfy 1 <= min <= opt <= max, got {(lo, mid, hi)}"
                )
        if self.channels < 1:
            raise ValueError(f"profile channels must be >= 1, got {self.channels}")

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Return the (min, opt, max) NCHW shapes for TensorRT's ``set_shape``."""
        c = self.channels
        return (
            (self.min_batch, c, self.min_hw, self.min_hw),
            (self.opt_batch, c, self.opt_hw, self.opt_hw),
            (self.max_batch, c, self.max_hw, self.max_hw),
        )

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Return True when an ``(n, c, h, w)`` input with ``n <= max_batch`` fits the profile."""
        n, c, h, w = shape
        hw_ok = all(self.min_hw <= v <= self.max_hw for v in (h, w))
        return c == self.channels and self.min_batch <= n <= self.max_batch and hw_ok


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(
    gpu_name: str, compute_capability: str, trt_version: str, model_sha256: str,
    profile: Profile, fp16: bool,
) -> str:
    """Return the cache key of an engine build (hex, 32 characters).

    Parameters
    ----------
    gpu_name : str
        ``torch.cuda.get_device_name()``, e.g. ``"NVIDIA H100 80GB HBM3"``.
    compute_capability : str
        e.g. ``"9.0"``.
    trt_version : str
        ``tensorrt.__version__``.
    model_sha256 : str
        :func:`file_sha256` of the ONNX model.
    profile : Profile
        Optimisation profile.
    fp16 : bool
        Whether FP16 kernels were allowed.

    Raises
    ------
    ValueError
        If a string argument is empty.
    """
    for name, value in (("gpu_name", gpu_name), ("trt_version", trt_version),
                        ("model_sha256", model_sha256)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    payload = json.dumps({
        "gpu": gpu_name, "cc": compute_capability, "trt": trt_version, "model": model_sha256,
        "profile": asdict(profile), "fp16": bool(fp16),
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def default_cache_dir() -> Path:
    """Return ``$LUNGSEG_TRT_CACHE`` or ``~/.cache/lungseg/tensorrt``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lungseg" / "tensorrt"


def engine_file(cache_dir: str | Path, model_stem: str, key: str) -> Path:
    """Return the cached engine path for ``model_stem`` and ``key``."""
    return Path(cache_dir) / f"{model_stem}-{key}.engine"


def stale_engines(cache_dir: str | Path, model_stem: str, key: str) -> list[Path]:
    """Return cached engines of ``model_stem`` built under another key (to delete)."""
    keep = engine_file(cache_dir, model_stem, key)
    folder = Path(cache_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{model_stem}-*.engine") if p != keep
                  and len(p.stem) == len(keep.stem))
