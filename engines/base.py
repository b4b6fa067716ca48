"""The one small interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from engines.spec import ModelSpec, read_spec


class Engine(ABC):
    """Runs an exported segmentation model.

    Subclasses load the model in ``__init__`` and implement :meth:`infer`. Engines are
    context managers; :meth:`close` releases backend resources.

    Parameters
    ----------
    model_path : str or Path
        The exported model (``.onnx``); its sidecar ``.json`` must sit next to it.
    """

    name: str = "abstract"
    OPTIONS: tuple[str, ...] = ()
    """Keyword options the constructor accepts besides ``model_path``."""

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model file not found: {self.model_path}")
        self.spec: ModelSpec = read_spec(self.model_path)

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Return lesion probabilities for a batch.

        Parameters
        ----------
        batch : ndarray
            ``(n, spec.in_channels, h, w)`` float32, h and w multiples of
            ``spec.size_multiple``.

        Returns
        -------
        ndarray
            ``(n, 1, h, w)`` float32 probabilities in [0, 1].
        """

    def close(self) -> None:
        """Release backend resources (idempotent)."""

    def describe(self) -> str:
        """Return a one-line description (backend, device, precision) for logs and reports."""
        return self.name

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """Validate a batch against the spec and return it as contiguous float32.

        Raises
        ------
        ValueError
            If the shape or channel count does not match the model.
        """
        if batch.ndim != 4 or batch.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"batch must be (n, {self.spec.in_channels}, h, w), got shape {batch.shape}"
            )
        m = self.spec.size_multiple
        if batch.shape[2] % m or batch.shape[3] % m:
            raise ValueError(f"batch height/width must be multiples of {m}, got {batch.shape}")
        return np.ascontiguousarray(batch, dtype=np.float32)
