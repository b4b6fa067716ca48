"""Batch augmentation on tensors: geometry, intensity, noise, gamma and kernel changes.

Rotation, zoom and flips; contrast, intensity shift and noise; optionally a random gamma
and a blur-to-sharpen change standing in for other reconstruction kernels. Geometric
transforms are applied identically to images and labels; tensors are ``(n, c, h, w)``
with images in [0, 1]. :class:`AugmentParams` holds the ranges; its defaults are the
augmentation every shipped model was trained with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random augmentation.

    Attributes
    ----------
    scale : tuple of float
        Zoom factor range.
    contrast, shift, noise : float
        Largest relative contrast change, intensity shift and noise standard deviation
        (in units of the [0, 1] input).
    gamma : float
        Largest ``|log gamma|``; 0 leaves the intensity curve linear.
    kernel : float
        Largest amount of in-plane blur (negative draws, up to a Gaussian of
        :data:`KERNEL_SIGMA_PX`) or sharpening (positive draws, an unsharp mask of the
        same width), standing in for other reconstruction kernels; 0 for none.
    """

    scale: tuple[float, float] = (0.85, 1.15)
    contrast: float = 0.1
    shift: float = 0.05
    noise: float = 0.02
    gamma: float = 0.0
    kernel: float = 0.0


KERNEL_SIGMA_PX = 1.0
"""Width of the Gaussian that the kernel augmentation blends toward or away from."""


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


def gaussian_blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Blur every channel in-plane with a Gaussian of ``sigma_px`` (reflected borders)."""
    radius = max(1, int(math.ceil(3 * sigma_px)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    k = k / k.sum()
    n, c, h, w = images.shape
    flat = images.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def _per_sample(images: torch.Tensor, limit: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """One draw per sample, uniform in ``[-limit, limit]``, shaped ``(n, 1, 1, 1)``."""
    u = (torch.rand(images.shape[0], generator=generator) * 2 - 1) * limit
    return u.to(images.device).view(-1, 1, 1, 1)


def random_kernel(
    images: torch.Tensor, amount: float, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blend each sample toward its blurred copy or away from it (unsharp mask).

    A draw ``k`` uniform in ``[-amount, amount]`` gives ``x + k * (x - blur(x))``: ``k = -1``
    is the blurred image, ``k > 0`` sharpens. Clipped to [0, 1].
    """
    detail = images - gaussian_blur(images, KERNEL_SIGMA_PX)
    return (images + _per_sample(images, amount, generator) * detail).clamp(0.0, 1.0)


def random_gamma(
    images: torch.Tensor, log_range: float, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Raise each sample to a power ``exp(u)``, ``u`` uniform in ``[-log_range, log_range]``."""
    return images.clamp_min(0.0) ** torch.exp(_per_sample(images, log_range, generator))


def augment(
    images: torch.Tensor, labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None, params: AugmentParams | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Geometry, then the optional kernel and gamma changes, then intensity augmentation.

    With the default :class:`AugmentParams` no random number is drawn for kernel and gamma,
    so results equal those of the earlier rotation/scale/flip + intensity augmentation.
    """
    p = params or AugmentParams()
    images, labels = random_geometry(images, labels, scale=p.scale, generator=generator)
    if p.kernel > 0:
        images = random_kernel(images, p.kernel, generator)
    if p.gamma > 0:
        images = random_gamma(images, p.gamma, generator)
    return random_intensity(images, p.contrast, p.shift, p.noise, generator), labels
