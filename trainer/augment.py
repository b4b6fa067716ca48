"""Batch augmentation on tensors: rotation, flips, contrast/intensity, noise.

Geometric transforms are applied identically to images and labels; tensors are
``(n, c, h, w)`` with images in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F  # noqa: N812


def random_geometry(
    images: torch.Tensor, labels: torch.Tensor | None, max_degrees: float = 180.0,
    scale: tuple[float, float] = (0.85, 1.15), generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotate by a random angle, rescale and flip each sample (bilinear; labels re-binarised).

    Raises
    ------
    ValueError
        If images is not 4D or labels differ in batch/spatial size.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (n, c, h, w), got {tuple(images.shape)}")
    if labels is not None and (labels.shape[0], *labels.shape[2:]) != (
        images.shape[0], *images.shape[2:]
    ):
        raise ValueError(f"labels {tuple(labels.shape)} do not match images {tuple(images.shape)}")
    n, dev = images.shape[0], images.device
    rand = torch.rand(n, 4, generator=generator).to(dev)
    angle = (rand[:, 0] * 2 - 1) * math.radians(max_degrees)
    s = scale[0] + rand[:, 1] * (scale[1] - scale[0])
    fx = torch.where(rand[:, 2] < 0.5, -1.0, 1.0)
    fy = torch.where(rand[:, 3] < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([
        torch.stack([cos * fx, -sin * fy, torch.zeros_like(s)], 1),
        torch.stack([sin * fx, cos * fy, torch.zeros_like(s)], 1),
    ], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if labels is None:
        return out, None
    lab = F.grid_sample(labels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out, (lab > 0.5).to(labels.dtype)


def random_intensity(
    images: torch.Tensor, contrast: float = 0.1, shift: float = 0.05, noise: float = 0.02,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random contrast (x*a), intensity shift (+b) and Gaussian noise, clipped to [0, 1]."""
    n = images.shape[0]
    rand = torch.rand(n, 3, generator=generator).to(images.device).view(n, 3, 1, 1, 1)
    a = 1.0 + (rand[:, 0] * 2 - 1) * contrast
    b = (rand[:, 1] * 2 - 1) * shift
    sigma = rand[:, 2] * noise
    eps = torch.randn(images.shape, generator=generator).to(images.device)
    return (images * a + b + sigma * eps).clamp(0.0, 1.0)


def augment(
    images: torch.Tensor, labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Geometry then intensity augmentation of a batch."""
    images, labels = random_geometry(images, labels, generator=generator)
    return random_intensity(images, generator=generator), labels
