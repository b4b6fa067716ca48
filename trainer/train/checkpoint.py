"""Checkpoints that carry their config: weights, optimizer, config, step/epoch, class name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.config import TrainConfig, config_from_saved
from trainer.nn.models import build_model


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
    cfg: TrainConfig, step: int, epoch: int, history: list[dict], extra: dict | None = None,
    rng: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    ``rng`` (the run's random-number states, :meth:`trainer.train.loop.Setup.rng_state`) is
    stored under ``"rng"`` when given, so that a resumed run draws what the uninterrupted
    run would have drawn.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "class_name": type(model).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": cfg.to_dict(),
        "step": step,
        "epoch": epoch,
        "history": history,
        "extra": extra or {},
    }
    if rng is not None:
        payload["rng"] = rng
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = torch.load(path, map_location="cpu", weights_only=False)
    keys = set(data) if isinstance(data, dict) else set()
    missing = {"class_name", "state_dict", "config", "step"} - keys
    if missing:
        raise ValueError(f"{path} is not a trainer checkpoint (missing {sorted(missing)})")
    return data


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the model of a checkpoint with its weights (eval mode)."""
    data = load_checkpoint(path)
    cfg = config_from_saved(data["config"])
    model = build_model(data["class_name"], cfg)
    model.load_state_dict(data["state_dict"])
    return model.eval(), cfg, data
