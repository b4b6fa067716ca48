"""Losses: VAE (reconstruction + beta * KL), NT-Xent, soft Dice + BCE."""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812

from trainer.config import DICE_MODES


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over latent elements, averaged over the batch."""
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())
    return kl.flatten(1).sum(dim=1).mean()


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(total, reconstruction, kl)``.

    Reconstruction is the squared error summed over pixels and averaged over the batch;
    ``total = reconstruction + beta * kl``.

    Raises
    ------
    ValueError
        If ``recon`` and ``x`` differ in shape or ``beta`` is negative.
    """
    if recon.shape != x.shape:
        raise ValueError(f"recon shape {tuple(recon.shape)} != x shape {tuple(x.shape)}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    rec = (recon - x).pow(2).flatten(1).sum(dim=1).mean()
    kl = kl_divergence(mu, logvar)
    return rec + beta * kl, rec, kl


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross entropy (SimCLR) of two views.

    Row ``i`` of ``z1`` and of ``z2`` are a positive pair; every other row of both views is a
    negative. The loss is averaged over the ``2n`` anchors.

    Raises
    ------
    ValueError
        If the shapes differ, fewer than 2 rows are given, or ``temperature <= 0``.
    """
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"z1, z2 must be equal (n >= 2, d) tensors, got {z1.shape}, {z2.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)`` computed over the whole batch."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + target.sum() + eps)


def per_sample_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    """Soft Dice loss of each sample that has foreground, averaged over those samples.

    Every lesion slice weighs the same whatever its area, as in a per-nodule mean Dice;
    samples without foreground are left to the BCE term. Zero when no sample has any.
    """
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    has_fg = t.sum(dim=1) > 0
    if not bool(has_fg.any()):
        return logits.sum() * 0.0
    p, t = p[has_fg], t[has_fg]
    dice = (2.0 * (p * t).sum(dim=1) + eps) / (p.sum(dim=1) + t.sum(dim=1) + eps)
    return 1.0 - dice.mean()


def dice_bce_loss(
    logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 1.0,
    dice_mode: str = "batch",
) -> torch.Tensor:
    """Soft Dice loss + ``bce_weight`` * binary cross entropy on logits.

    Parameters
    ----------
    logits, target : torch.Tensor
        Same shape, ``(batch, 1, H, W)``; target in {0, 1}.
    bce_weight : float
        Weight of the BCE term.
    dice_mode : {'batch', 'sample'}
        Dice pooled over the whole batch (:func:`soft_dice_loss`) or averaged over the
        samples with foreground (:func:`per_sample_dice_loss`).

    Raises
    ------
    ValueError
        If the shapes differ or ``dice_mode`` is unknown.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits shape {tuple(logits.shape)} != target {tuple(target.shape)}")
    if dice_mode not in DICE_MODES:
        raise ValueError(f"dice_mode must be one of {DICE_MODES}, got {dice_mode!r}")
    dice = soft_dice_loss if dice_mode == "batch" else per_sample_dice_loss
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return dice(logits, target) + bce_weight * bce
