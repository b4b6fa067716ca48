"""Restoration pretraining (after Models Genesis, Zhou et al. 2019/2021): measured, not adopted.

A U-Net learns to restore the centre slice of a patch from a corrupted copy: a random
monotone intensity curve, pixels shuffled inside small tiles, and in-painting (boxes
replaced by noise) or out-painting (everything outside boxes replaced by noise). The
encoder learns texture and intensity, and, unlike VAE or contrastive pretraining, the
decoder is trained too. Tensors are ``(n, c, h, w)`` with images in [0, 1]; the same
corruption is applied to every channel (neighbouring slices) of a sample.

Run from the repository root (``trainer`` config keys as ``--set KEY=VALUE``)::

    python -m experiments.restoration pretrain --config trainer/configs/default.yaml \
        --set out_dir=runs/restore
    python -m experiments.restoration finetune --config trainer/configs/default.yaml \
        --set init=runs/restore/final.pt --set out_dir=runs/ft_restore

``finetune`` copies every weight of the restoration U-Net but its output head (encoder and
decoder) into the segmentation U-Net, then fine-tunes as ``trainer finetune`` does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainer.config import TrainConfig, load_config
from trainer.data.augment import augment
from trainer.nn.models import UNet
from trainer.nn.transfer import copy_matching
from trainer.train import loop


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


class RestorationUNet(UNet):
    """A :class:`trainer.nn.models.UNet` whose output is the restored centre slice (logits).

    Same layers and names as the segmentation U-Net, so :func:`transfer_unet_body` can copy
    its encoder and decoder; a separate class so that ``trainer export`` refuses it.
    """


def transfer_unet_body(
    target: nn.Module, source_state: Mapping[str, torch.Tensor], head: str = "head."
) -> list[str]:
    """Copy every weight of a U-Net except its output head (encoder and decoder).

    For a checkpoint of :func:`pretrain_restore`, whose U-Net learnt to restore images:
    its decoder is trained as well, so more than the encoder can be reused.

    ``target`` is the U-Net to initialise, ``source_state`` the state dict of one with the
    same layers; the layers under ``head`` (the output layer) keep their fresh values, and
    the names copied are returned.

    Raises
    ------
    TransferError
        If names or shapes differ (listed), e.g. for a VAE or a contrastive checkpoint.
    """
    src = {k: v for k, v in source_state.items() if not k.startswith(head)}
    dst = {k: v for k, v in target.state_dict().items() if not k.startswith(head)}
    return copy_matching(target, src, dst, "U-Net")


def restoration_loss(model: nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mean squared error of the restored centre slice of a corrupted batch ``x``."""
    centre = x.shape[1] // 2
    restored = torch.sigmoid(model(corrupt(x, gen)))
    return torch.nn.functional.mse_loss(restored, x[:, centre:centre + 1])


def pretrain_restore(cfg: TrainConfig) -> Path:
    """Train a U-Net to restore corrupted unlabelled patches; return the final checkpoint."""
    setup, run_dir = loop.Setup(cfg), loop.run_dir_of(cfg)
    model = RestorationUNet(len(cfg.slice_offsets_mm), cfg.base_width, cfg.levels,
                            cfg.max_width, decoder=cfg.decoder).to(setup.device)
    val_gen = torch.Generator()
    val_x = setup.tensor(setup.val_x)

    def step() -> torch.Tensor:
        x, _ = setup.unlabelled.sample(cfg.batch_size, cfg.negative_fraction)
        x, _ = augment(setup.tensor(x), generator=setup.gen)
        return restoration_loss(model, x, setup.gen)

    def evaluate() -> dict:
        # the same corruptions at every evaluation, so the curve compares like with like
        return {"val_loss": float(restoration_loss(model, val_x, val_gen.manual_seed(cfg.seed)))}

    history, seconds = loop.train_loop(setup, model, step, evaluate, run_dir)
    return loop.finish(setup, model, history, seconds, run_dir)


def finetune_from_restoration(cfg: TrainConfig) -> Path:
    """Fine-tune a U-Net whose encoder and decoder start from ``cfg.init`` (a restoration run).

    Raises
    ------
    ValueError
        If ``cfg.init`` is empty.
    """
    if not cfg.init:
        raise ValueError("finetune needs init=<restoration checkpoint>")
    return loop.finetune(cfg, init_weights=transfer_unet_body)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``pretrain`` or ``finetune`` with ``--config`` and ``--set`` options."""
    parser = argparse.ArgumentParser(prog="python -m experiments.restoration",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("pretrain", "finetune"))
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    run = pretrain_restore if args.command == "pretrain" else finetune_from_restoration
    print(run(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
