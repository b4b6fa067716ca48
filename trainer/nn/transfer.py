"""Encoder transfer between models: weights matched by name and shape."""

from __future__ import annotations

from collections.abc import Mapping

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
    return _copy_matching(target, src, encoder_state(target.state_dict(), prefix), "encoder")


def transfer_unet_body(
    target: nn.Module, source_state: Mapping[str, torch.Tensor], head: str = "head."
) -> list[str]:
    """Copy every weight of a U-Net except its output head (encoder and decoder).

    For a checkpoint of ``trainer pretrain-restore``, whose U-Net learnt to restore images:
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
    return _copy_matching(target, src, dst, "U-Net")


def _copy_matching(target: nn.Module, src: Mapping, dst: Mapping, what: str) -> list[str]:
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


def initialise(
    target: nn.Module, source_state: Mapping[str, torch.Tensor], scope: str
) -> list[str]:
    """Copy pretrained weights into ``target`` by ``scope`` (``encoder`` or ``unet``).

    Raises
    ------
    TransferError
        If the weights do not fit (see :func:`transfer_encoder`, :func:`transfer_unet_body`).
    ValueError
        If ``scope`` is unknown.
    """
    if scope == "encoder":
        return transfer_encoder(target, source_state)
    if scope == "unet":
        return transfer_unet_body(target, source_state)
    raise ValueError(f"scope must be 'encoder' or 'unet', got {scope!r}")
