"""Image corruptions for restoration pretraining (after Models Genesis, Zhou et al. 2019/2021).

A U-Net learns to restore the centre slice of a patch from a corrupted copy: a random
monotone intensity curve, pixels shuffled inside small tiles, and in-painting (boxes
replaced by noise) or out-painting (everything outside boxes replaced by noise). The
encoder learns texture and intensity, and, unlike VAE or contrastive pretraining, the
decoder is trained too. Tensors are ``(n, c, h, w)`` with images in [0, 1]; the same
corruption is applied to every channel (neighbouring slices) of a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CorruptionRates:
    """Probability of each corruption per sample (Models Genesis' defaults).

    Attributes
    ----------
    intensity : float
        Random monotone intensity curve.
    shuffle : float
        Local pixel shuffling.
    paint : float
        In- or out-painting.
    outpaint : float
        Share of painting that is out-painting (the rest is in-painting).
    """

    intensity: float = 0.9
    shuffle: float = 0.5
    paint: float = 0.9
    outpaint: float = 0.8


def _uniform(gen: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen)


def intensity_curve(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Map each sample through a random monotone piecewise-linear curve of [0, 1].

    The curve passes through two random inner knots; half the samples get a decreasing
    curve (intensities inverted), as the flipped Bezier curves of Models Genesis.
    """
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        xs = torch.cat([torch.zeros(1), _uniform(gen, 2).sort().values, torch.ones(1)])
        ys = torch.cat([torch.zeros(1), _uniform(gen, 2).sort().values, torch.ones(1)])
        if _uniform(gen, 1).item() < 0.5:
            ys = 1.0 - ys
        xs, ys = xs.to(x.device), ys.to(x.device)
        seg = torch.bucketize(x[i].clamp(0, 1), xs[1:-1])
        x0, x1, y0, y1 = xs[seg], xs[seg + 1], ys[seg], ys[seg + 1]
        out[i] = y0 + (x[i] - x0) * (y1 - y0) / (x1 - x0).clamp_min(1e-6)
    return out.clamp(0.0, 1.0)


def shuffle_tiles(
    x: torch.Tensor, tile: int, fraction: float, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Permute the pixels inside a random ``fraction`` of the ``tile x tile`` tiles.

    Every channel of a tile gets the same permutation.

    Raises
    ------
    ValueError
        If the image size is not a multiple of ``tile``.
    """
    n, c, h, w = x.shape
    if h % tile or w % tile:
        raise ValueError(f"image size {(h, w)} is not a multiple of tile {tile}")
    gh, gw = h // tile, w // tile
    tiles = x.reshape(n, c, gh, tile, gw, tile).permute(0, 1, 2, 4, 3, 5)
    tiles = tiles.reshape(n, c, gh, gw, tile * tile)
    order = _uniform(gen, n, 1, gh, gw, tile * tile).argsort(-1).to(x.device)
    shuffled = tiles.gather(-1, order.expand_as(tiles))
    pick = (_uniform(gen, n, 1, gh, gw, 1) < fraction).to(x.device)
    tiles = torch.where(pick, shuffled, tiles)
    tiles = tiles.reshape(n, c, gh, gw, tile, tile).permute(0, 1, 2, 4, 3, 5)
    return tiles.reshape(n, c, h, w)


def _box(gen: torch.Generator | None, h: int, w: int, lo: float, hi: float) -> tuple[slice, slice]:
    size = lo + _uniform(gen, 2) * (hi - lo)
    bh, bw = max(1, int(size[0] * h)), max(1, int(size[1] * w))
    corner = _uniform(gen, 2)
    y0, x0 = int(corner[0] * (h - bh + 1)), int(corner[1] * (w - bw + 1))
    return slice(y0, y0 + bh), slice(x0, x0 + bw)


def paint(x: torch.Tensor, outpaint: bool, gen: torch.Generator | None = None) -> torch.Tensor:
    """In-paint (1-4 boxes of 1/8-1/4 of the side become noise) or out-paint one sample.

    Out-painting keeps 1-3 boxes of 3/8-7/8 of the side and turns the rest into noise.
    ``x`` is one sample ``(c, h, w)``.
    """
    _, h, w = x.shape
    noise = _uniform(gen, *x.shape).to(x.device)
    if outpaint:
        keep = torch.zeros(h, w, dtype=torch.bool, device=x.device)
        for _ in range(1 + int(_uniform(gen, 1).item() * 3)):
            keep[_box(gen, h, w, 3 / 8, 7 / 8)] = True
        return torch.where(keep, x, noise)
    out = x.clone()
    for _ in range(1 + int(_uniform(gen, 1).item() * 4)):
        box = _box(gen, h, w, 1 / 8, 1 / 4)
        out[:, box[0], box[1]] = noise[:, box[0], box[1]]
    return out


def corrupt(
    x: torch.Tensor, gen: torch.Generator | None = None, rates: CorruptionRates | None = None
) -> torch.Tensor:
    """Return a corrupted copy of a batch (each corruption drawn per sample by ``rates``).

    Raises
    ------
    ValueError
        If ``x`` is not ``(n, c, h, w)`` with h and w multiples of 8.
    """
    if x.ndim != 4 or x.shape[2] % 8 or x.shape[3] % 8:
        raise ValueError(f"x must be (n, c, h, w) with h, w multiples of 8, got {tuple(x.shape)}")
    rates = rates or CorruptionRates()
    n = x.shape[0]
    draw = _uniform(gen, n, 4)
    out = torch.where((draw[:, 0] < rates.intensity).view(n, 1, 1, 1).to(x.device),
                      intensity_curve(x, gen), x)
    tile = (2, 4, 8)[int(_uniform(gen, 1).item() * 3)]
    out = torch.where((draw[:, 1] < rates.shuffle).view(n, 1, 1, 1).to(x.device),
                      shuffle_tiles(out, tile, 0.5, gen), out)
    for i in range(n):
        if draw[i, 2] < rates.paint:
            out[i] = paint(out[i], bool(draw[i, 3] < rates.outpaint), gen)
    return out
