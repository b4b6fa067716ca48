"""Inference backends behind one interface; :func:`create_engine` picks one."""

from __future__ import annotations

from pathlib import Path

from engines.base import Engine
from engines.spec import ModelSpec, read_spec

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "lungseg-unet.onnx"


def default_model_path() -> Path:
    """Return the shipped default model (``models/lungseg-unet.onnx``)."""
    return DEFAULT_MODEL


def create_engine(kind: str, model_path: str | Path | None = None, **options: object) -> Engine:
    """Create an inference engine.

    Parameters
    ----------
    kind : {'onnx', 'auto', 'torch', 'tensorrt'}
        Backend name.
    model_path : str or Path, optional
        Exported model; default :func:`default_model_path`.
    **options
        Backend options (e.g. ``threads``).

    Raises
    ------
    ValueError
        If ``kind`` is unknown.
    """
    path = Path(model_path) if model_path is not None else default_model_path()
    if kind in ("onnx", "auto"):
        from engines.onnx_engine import OnnxEngine

        return OnnxEngine(path, **options)
    raise ValueError(
        f"engine kind must be one of 'auto', 'onnx', 'torch', 'tensorrt', got {kind!r}"
    )


__all__ = ["Engine", "ModelSpec", "create_engine", "default_model_path", "read_spec"]
