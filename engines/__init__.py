"""Inference backends behind one interface; :func:`create_engine` picks one.

Backends: ``onnx`` (ONNX Runtime, CPU by default), ``torch`` (PyTorch ExportedProgram,
CPU or CUDA) and ``tensorrt`` (TensorRT engine built from the ONNX model, cached). ``auto``
picks TensorRT if it is importable and a CUDA GPU exists, then PyTorch on CUDA, then ONNX
Runtime on the CPU, and logs why. Each backend imports its framework only when it is created.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from engines.base import Engine
from engines.detect import auto_order, probe
from engines.errors import EngineError
from engines.spec import ModelSpec, read_spec, sidecar_path

log = logging.getLogger(__name__)

KINDS = ("auto", "onnx", "torch", "tensorrt")

_BACKENDS = {
    "onnx": ("engines.onnx_engine", "OnnxEngine"),
    "torch": ("engines.torch_engine", "TorchEngine"),
    "tensorrt": ("engines.tensorrt_engine", "TensorRTEngine"),
}


def default_model_path() -> Path:
    """Return the shipped default model (``lungseg-unet.onnx`` of :mod:`lungseg_models`).

    In a checkout that is not installed, the ``models/`` folder beside this package.
    """
    try:
        from lungseg_models import default_model_path as installed
    except ImportError:
        return Path(__file__).resolve().parent.parent / "models" / "lungseg-unet.onnx"
    return installed()


def check_model_files(model_path: str | Path | None) -> Path:
    """Resolve ``model_path`` (default: the shipped model) and check it and its sidecar exist.

    Parameters
    ----------
    model_path : str or Path, optional
        The exported ``.onnx`` model.

    Returns
    -------
    Path
        The model path.

    Raises
    ------
    EngineError
        If the model or its sidecar ``.json`` is missing.
    """
    path = Path(model_path) if model_path is not None else default_model_path()
    if not path.is_file():
        hint = " (train and export one with `trainer export`)" if model_path is None else ""
        raise EngineError(f"model file not found: {path}{hint}")
    if not sidecar_path(path).is_file():
        raise EngineError(
            f"model sidecar not found: {sidecar_path(path)} (it must sit next to {path.name})"
        )
    return path


def engine_class(kind: str) -> type[Engine]:
    """Import and return the engine class of backend ``kind``.

    Raises
    ------
    ValueError
        If ``kind`` is not a backend name.
    """
    if kind not in _BACKENDS:
        raise ValueError(f"engine kind must be one of {KINDS}, got {kind!r}")
    module, name = _BACKENDS[kind]
    return getattr(importlib.import_module(module), name)


def create_engine(kind: str, model_path: str | Path | None = None, **options: object) -> Engine:
    """Create an inference engine.

    Parameters
    ----------
    kind : {'auto', 'onnx', 'torch', 'tensorrt'}
        Backend name; ``auto`` picks the fastest one available and logs why.
    model_path : str or Path, optional
        Exported model (``.onnx``; the torch backend reads the ``.pt2`` beside it);
        default :func:`default_model_path`.
    **options
        Backend options (e.g. ``threads`` for onnx, ``device``/``dtype`` for torch). With
        ``auto``, options a backend does not accept are dropped for it.

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        If ``kind`` is unknown, or an option is not one the chosen backend accepts.
    EngineError
        If the model or sidecar is missing, the backend is not installed (the message names
        the extra to install) or it cannot load the model.
    """
    if kind not in KINDS:
        raise ValueError(f"engine kind must be one of {KINDS}, got {kind!r}")
    path = check_model_files(model_path)
    if kind != "auto":
        cls = engine_class(kind)
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise ValueError(
                f"engine {kind!r} has no option(s) {unknown}; it accepts {list(cls.OPTIONS)}"
            )
        return cls(path, **options)
    return _create_auto(path, options)


def _create_auto(path: Path, options: dict[str, object]) -> Engine:
    failures: list[str] = []
    for kind, reason in auto_order(probe()):
        cls = engine_class(kind)
        accepted = {k: v for k, v in options.items() if k in cls.OPTIONS}
        try:
            engine = cls(path, **accepted)
        except EngineError as exc:
            log.warning("engine auto: %s unusable (%s)", kind, exc)
            failures.append(f"{kind}: {exc}")
            continue
        log.info("engine auto: chose %s: %s", engine.describe(), reason)
        return engine
    raise EngineError("engine auto: no backend could load the model: " + "; ".join(failures))


__all__ = [
    "KINDS",
    "Engine",
    "ModelSpec",
    "check_model_files",
    "create_engine",
    "default_model_path",
    "engine_class",
    "read_spec",
]
