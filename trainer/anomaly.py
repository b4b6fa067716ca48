"""VAE reconstruction error as an anomaly score, exported next to the segmentation model.

The score of a patch is the mean squared difference between the model input and the VAE's
reconstruction from the latent mean (deterministic). Its distribution on the validation
patients' patches is stored in the segmentation sidecar (``extra.anomaly``), so a consumer
can flag input whose score lies far above what the model saw in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer.config import TrainConfig
from trainer.export.exporter import export_onnx, load_for_export


class ReconstructionError(nn.Module):
    """Map ``(n, c, h, w)`` input in [0, 1] to the per-sample mean squared reconstruction error."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(n,)`` scores."""
        mu, _ = self.vae.encode(x)
        return (self.vae.decode(mu) - x).pow(2).mean(dim=(1, 2, 3))


def validation_patches(cfg: TrainConfig, n: int = 512, seed: int = 7) -> np.ndarray:
    """Draw ``n`` patches (crops and negatives) of the validation patients from the cache."""
    from trainer.data.datasets import patient_split
    from trainer.data.patches import PatchCache, PatchSampler

    cache = PatchCache(cfg.cache)
    patients = sorted({cache.meta[i]["patient"] for i in cache.entries()})
    val = patient_split(patients, cfg.test_fraction, cfg.val_fraction, seed=0)["val"]
    sampler = PatchSampler(cache, cache.entries(val), cfg.patch_size, seed)
    return sampler.sample(n, cfg.negative_fraction)[0]


def score_statistics(scores: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation and percentiles of anomaly scores.

    Raises
    ------
    ValueError
        If ``scores`` is empty.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("scores must not be empty")
    pct = np.percentile(scores, [50, 95, 99])
    return {"mean": float(scores.mean()), "std": float(scores.std()), "p50": float(pct[0]),
            "p95": float(pct[1]), "p99": float(pct[2]), "n_patches": int(scores.size)}


def export_anomaly(
    vae_checkpoint: str | Path, out_path: str | Path, cfg: TrainConfig
) -> dict:
    """Export the VAE score model to ONNX and return its sidecar entry (with statistics).

    Raises
    ------
    ValueError
        If the checkpoint is not a VAE or ``out_path`` does not end in ``.onnx``.
    """
    vae, vae_cfg, data, out_path = load_for_export(vae_checkpoint, out_path, "VAE")
    model = ReconstructionError(vae).eval()
    with torch.no_grad():
        scores = model(torch.from_numpy(validation_patches(cfg))).numpy()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out_path, len(vae_cfg.slice_offsets_mm), vae_cfg.size_multiple, "score")
    return {"model": out_path.name, "input": "same batch as the segmentation model",
            "score": "mean squared reconstruction error per slice/patch (latent mean)",
            "validation_patches_64px": score_statistics(scores),
            "vae_steps": data["step"]}
