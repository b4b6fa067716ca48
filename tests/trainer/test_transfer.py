import pytest
import torch

from trainer.config import build_config
from trainer.nn.models import build_model
from trainer.nn.transfer import TransferError, transfer_encoder

CFG = build_config({"base_width": 4, "levels": 2, "max_width": 16, "size_multiple": 16,
                    "patch_size": 32})


@pytest.mark.parametrize("decoder", ["concat", "additive"])
def test_vae_and_contrastive_encoders_transfer_to_unet(decoder):
    target = build_config({**CFG.to_dict(), "decoder": decoder})
    for source in ("VAE", "ContrastiveModel"):
        pre = build_model(source, CFG)
        unet = build_model("UNet", target)
        names = transfer_encoder(unet, pre.state_dict())
        assert names and all(n.startswith("encoder.") for n in names)
        for n in names:
            assert torch.equal(unet.state_dict()[n], pre.state_dict()[n])


def test_mismatched_encoder_lists_keys():
    other = build_model("VAE", build_config({"base_width": 8, "levels": 2, "max_width": 16,
                                              "patch_size": 32, "size_multiple": 16}))
    with pytest.raises(TransferError, match=r"shape mismatch=\['encoder.stages.0.0.weight"):
        transfer_encoder(build_model("UNet", CFG), other.state_dict())
    deeper = build_model("VAE", build_config({"base_width": 4, "levels": 3, "max_width": 16,
                                               "patch_size": 32, "size_multiple": 16}))
    with pytest.raises(TransferError, match="unexpected=.*encoder.stages.3"):
        transfer_encoder(build_model("UNet", CFG), deeper.state_dict())


def test_source_without_encoder_raises():
    with pytest.raises(TransferError, match="no keys"):
        transfer_encoder(build_model("UNet", CFG), {"head.weight": torch.zeros(1)})


def test_additive_decoder_output_shape_and_gradients():
    cfg = build_config({**CFG.to_dict(), "decoder": "additive"})
    unet = build_model("UNet", cfg)
    x = torch.rand(2, 3, 32, 48, requires_grad=True)
    out = unet(x)
    out.sum().backward()
    assert out.shape == (2, 1, 32, 48)
    assert all(p.grad is not None for p in unet.parameters())
    assert len(unet.reduce) == CFG.levels


def test_unknown_decoder_is_rejected():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="decoder must be"):
        build_config({**CFG.to_dict(), "decoder": "sum"})
