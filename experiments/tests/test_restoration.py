import pytest
import torch

from experiments.restoration import (
    CorruptionRates,
    RestorationUNet,
    corrupt,
    intensity_curve,
    main,
    paint,
    shuffle_tiles,
    transfer_unet_body,
)
from trainer.config import REPO_ROOT, build_config, load_config
from trainer.nn.models import build_model
from trainer.nn.transfer import TransferError, transfer_encoder

TINY = str(REPO_ROOT / "trainer" / "configs" / "tiny.yaml")
CFG = load_config(TINY)


def _restoration_unet(cfg):
    return RestorationUNet(len(cfg.slice_offsets_mm), cfg.base_width, cfg.levels, cfg.max_width,
                           decoder=cfg.decoder)


def _batch(n=4, c=3, h=32, w=32, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_intensity_curve_is_monotone_per_sample_and_keeps_the_range():
    ramp = torch.linspace(0, 1, 64).repeat(8, 1, 1, 1)  # (8, 1, 1, 64)
    out = intensity_curve(ramp, torch.Generator().manual_seed(3))
    assert out.min() >= 0 and out.max() <= 1
    steps = out[:, 0, 0, 1:] - out[:, 0, 0, :-1]
    rising = (steps >= -1e-6).all(dim=1)
    falling = (steps <= 1e-6).all(dim=1)
    assert bool((rising | falling).all())
    assert bool(rising.any()) and bool(falling.any())  # both directions are drawn
    ends = out[:, 0, 0, [0, -1]]
    assert torch.allclose(ends.sum(dim=1), torch.ones(8), atol=1e-5)  # 0->0, 1->1 or inverted


def test_shuffle_tiles_permutes_inside_tiles_only_and_alike_in_every_channel():
    x = _batch(2, 1, 16, 16)
    x = torch.cat([x, 2 * x], dim=1)
    out = shuffle_tiles(x, 4, 1.0, torch.Generator().manual_seed(0))
    assert not torch.equal(out, x)
    tiles = x.reshape(2, 2, 4, 4, 4, 4).permute(0, 1, 2, 4, 3, 5).reshape(2, 2, 16, 16)
    got = out.reshape(2, 2, 4, 4, 4, 4).permute(0, 1, 2, 4, 3, 5).reshape(2, 2, 16, 16)
    assert torch.equal(tiles.sort(-1).values, got.sort(-1).values)
    assert torch.equal(out[:, 1], 2 * out[:, 0])
    assert torch.equal(shuffle_tiles(x, 4, 0.0), x)
    with pytest.raises(ValueError, match="multiple of tile 8"):
        shuffle_tiles(_batch(1, 1, 12, 16), 8, 0.5)


def test_inpainting_changes_boxes_and_outpainting_keeps_boxes():
    x = torch.full((3, 32, 32), 0.5)
    gen = torch.Generator().manual_seed(2)
    inpainted = paint(x, outpaint=False, gen=gen)
    changed = (inpainted != x).any(dim=0)
    assert 0 < changed.float().mean() < 0.5
    assert torch.equal((inpainted != x)[0], (inpainted != x)[2])  # same boxes in every channel
    outpainted = paint(x, outpaint=True, gen=gen)
    kept = (outpainted == x).all(dim=0)
    assert kept.float().mean() >= (3 / 8) ** 2 * 0.9 and not bool(kept.all())


def test_corrupt_follows_its_rates_and_rejects_bad_shapes():
    x = _batch()
    none = CorruptionRates(intensity=0.0, shuffle=0.0, paint=0.0)
    assert torch.equal(corrupt(x, torch.Generator().manual_seed(0), none), x)
    out = corrupt(x, torch.Generator().manual_seed(0), CorruptionRates(1.0, 1.0, 1.0, 1.0))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(x, _batch())  # the input is not modified
    with pytest.raises(ValueError, match="multiples of 8"):
        corrupt(_batch(1, 3, 30, 32))


@pytest.mark.parametrize("decoder", ["concat", "additive"])
def test_restoration_unet_transfers_all_but_the_head(decoder):
    cfg = build_config({**CFG.to_dict(), "decoder": decoder})
    pre, unet = _restoration_unet(cfg), build_model("UNet", cfg)
    head_before = unet.head.weight.clone()
    names = transfer_unet_body(unet, pre.state_dict())
    assert any(n.startswith("up_blocks.") for n in names)
    assert not any(n.startswith("head.") for n in names)
    assert set(names) == {k for k in unet.state_dict() if not k.startswith("head.")}
    for n in names:
        assert torch.equal(unet.state_dict()[n], pre.state_dict()[n])
    assert torch.equal(unet.head.weight, head_before)


def test_unet_body_refuses_an_encoder_only_checkpoint():
    missing_decoder = r"U-Net weights do not match: missing=\[[^]]*'up_blocks"
    with pytest.raises(TransferError, match=missing_decoder):
        transfer_unet_body(build_model("UNet", CFG), build_model("VAE", CFG).state_dict())
    names = transfer_encoder(build_model("UNet", CFG), _restoration_unet(CFG).state_dict())
    assert names and all(n.startswith("encoder.") for n in names)


@pytest.mark.slow
def test_pretrain_then_finetune_from_restoration(tiny_vois, tmp_path):
    from trainer.cli import main as trainer_main
    from trainer.train.checkpoint import load_checkpoint

    common = ["--config", TINY, "--set", f"vois_dir={tiny_vois}",
              "--set", f"cache={tmp_path / 'cache.npz'}"]
    assert trainer_main(["cache", *common]) == 0
    assert main(["pretrain", *common, "--set", f"out_dir={tmp_path / 'res'}"]) == 0
    restored = tmp_path / "res" / "final.pt"
    assert load_checkpoint(restored)["class_name"] == "RestorationUNet"
    assert main(["finetune", *common, "--set", f"out_dir={tmp_path / 'ft'}",
                 "--set", f"init={restored}"]) == 0
    assert load_checkpoint(tmp_path / "ft" / "final.pt")["class_name"] == "UNet"
    with pytest.raises(ValueError, match="init=<restoration checkpoint>"):
        main(["finetune", *common, "--set", f"out_dir={tmp_path / 'ft2'}"])
