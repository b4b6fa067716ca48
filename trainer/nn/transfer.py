"""Encoder transfer between models: weights matched by name and shape."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class TransferError(ValueError):
    """Raised when pretrained encoder weights do not fit the target model."""


def encoder_state(state: Mapping[str, torch.Tensor], prefix: str = "encoder.") -> dict:
    """Return the entries of ``state`` under ``prefix`` (names kept)."""
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def transfer_encoder(
    target: nn.Module, source_state: Mapping[str, torch.Tensor], prefix: str = "encoder."
) -> list[str]:
    """Copy every ``prefix`` weight of ``source_state`` into ``target``.

    Parameters
    ----------
    target : nn.Module
        Model with an encoder under ``prefix`` (e.g. :class:`trainer.nn.models.UNet`).
    source_state : mapping
        State dict of a pretrained model with the same encoder.
    prefix : str
        Name prefix of the encoder.

    Returns
    -------
    list of str
        The names copied.

    Raises
    ------
    TransferError
        If the source has no encoder weights, or names or shapes differ; the message lists
        the missing, unexpected and mismatched keys.
    """
    src = encoder_state(source_state, prefix)
    if not src:
        raise TransferError(f"source state has no keys starting with {prefix!r}")
    return copy_matching(target, src, encoder_state(target.state_dict(), prefix), "encoder")


def copy_matching(target: nn.Module, src: Mapping, dst: Mapping, what: str) -> list[str]:
    """Load ``src`` into ``target`` when its names and shapes are those of ``dst``.

    ``dst`` is the part of ``target``'s state that ``src`` must fill; ``what`` names it in
    the error. Returns the names copied.

    Raises
    ------
    TransferError
        If names are missing or unexpected, or shapes differ (all listed).
    """
    missing = sorted(set(dst) - set(src))
    unexpected = sorted(set(src) - set(dst))
    mismatched = sorted(
        f"{k}: {tuple(src[k].shape)} vs {tuple(dst[k].shape)}"
        for k in set(src) & set(dst)
        if src[k].shape != dst[k].shape
    )
    if missing or unexpected or mismatched:
        raise TransferError(
            f"{what} weights do not match: missing={missing}, unexpected={unexpected}, "
            f"shape mismatch={mismatched}"
        )
    target.load_state_dict(dict(src), strict=False)
    return sorted(src)


EXPORT_PREFIX = "net."
"""Name prefix of the U-Net's weights inside an exported ``.pt2`` program."""


def load_exported_weights(target: nn.Module, path: str | Path) -> list[str]:
    """Copy every weight of an exported model (``.pt2``) into ``target``.

    Fine-tuning from a released model starts from its whole U-Net.

    Parameters
    ----------
    target : nn.Module
        A U-Net built from the same config (layers, widths, decoder, channels).
    path : str or Path
        ``.pt2`` file written by ``trainer export``.

    Returns
    -------
    list of str
        The names copied.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TransferError
        If names or shapes differ from ``target``'s (all listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    state = torch.export.load(str(path)).state_dict
    src = {k[len(EXPORT_PREFIX):]: v.detach().clone() for k, v in state.items()
           if k.startswith(EXPORT_PREFIX)}
    dst = {k: v for k, v in target.state_dict().items() if k in src or not k.endswith(
        "num_batches_tracked")}
    return copy_matching(target, src, dst, f"exported model {path.name}")
