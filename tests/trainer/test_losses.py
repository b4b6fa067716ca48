import math

import pytest
import torch

from trainer.nn.losses import (
    dice_bce_loss,
    kl_divergence,
    nt_xent,
    per_sample_dice_loss,
    soft_dice_loss,
    vae_loss,
)


def test_kl_hand_computed():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5*(mu^2 + var - 1 - logvar): 0.5*(1) + 0.5*(2 - 1 - ln2)
    expected = 0.5 + 0.5 * (1.0 - math.log(2.0))
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_vae_loss_combines_terms():
    x = torch.zeros(2, 1, 2, 2)
    recon = torch.full((2, 1, 2, 2), 0.5)
    mu, logvar = torch.ones(2, 3), torch.zeros(2, 3)
    total, rec, kl = vae_loss(recon, x, mu, logvar, beta=0.1)
    assert rec.item() == pytest.approx(4 * 0.25)
    assert kl.item() == pytest.approx(1.5)
    assert total.item() == pytest.approx(1.0 + 0.15)
    with pytest.raises(ValueError, match="beta"):
        vae_loss(recon, x, mu, logvar, beta=-1.0)


def test_nt_xent_hand_computed():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    # anchor 0: positive sim 1, negatives: z1[1] (0) and z2[1] (0)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0.0)))
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), 0.0)
    with pytest.raises(ValueError):
        nt_xent(torch.ones(1, 3), torch.ones(1, 3), 0.5)


def test_dice_bce_hand_computed():
    logits = torch.tensor([[[[0.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    # p = 0.5 each: dice = 1 - (2*0.5 + 1) / (1 + 1 + 1); bce = ln 2
    dice = 1.0 - 2.0 / 3.0
    assert soft_dice_loss(logits, target).item() == pytest.approx(dice, rel=1e-6)
    got = dice_bce_loss(logits, target, bce_weight=2.0).item()
    assert got == pytest.approx(dice + 2 * math.log(2.0), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        dice_bce_loss(logits, target[..., :1])


def test_per_sample_dice_hand_computed():
    # sample 0: p = 0.5 on [1, 0] -> Dice (2*0.5 + 1) / (1 + 1 + 1) = 2/3
    # sample 1: p ~ 1 on [1, 1] -> Dice (2*2 + 1) / (2 + 2 + 1) = 1
    # sample 2: no foreground -> left out of the Dice term
    logits = torch.tensor([[[[0.0, 0.0]]], [[[20.0, 20.0]]], [[[0.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]], [[[0.0, 0.0]]]])
    assert per_sample_dice_loss(logits, target).item() == pytest.approx(1 / 6, rel=1e-6)
    # pooled over the batch: 1 - (2*2.5 + 1) / (4 + 3 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.25, rel=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target).item()
    got = dice_bce_loss(logits, target, dice_mode="sample").item()
    assert got == pytest.approx(1 / 6 + bce, rel=1e-6)


def test_per_sample_dice_without_foreground_is_zero_and_differentiable():
    logits = torch.zeros(2, 1, 3, 3, requires_grad=True)
    loss = per_sample_dice_loss(logits, torch.zeros(2, 1, 3, 3))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    with pytest.raises(ValueError, match="dice_mode"):
        dice_bce_loss(logits, torch.zeros(2, 1, 3, 3), dice_mode="voxel")
