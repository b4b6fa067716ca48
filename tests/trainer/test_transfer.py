import pytest
import torch

from trainer.config import build_config
from trainer.models import build_model
from trainer.transfer import TransferError, transfer_encoder

CFG = build_config({"base_width": 4, "levels": 2, "max_width": 16, "size_multiple": 16,
                    "patch_size": 32})


def test_vae_and_contrastive_encoders_transfer_to_unet():
    for source in ("VAE", "ContrastiveModel"):
        pre = build_model(source, CFG)
        unet = build_model("UNet", CFG)
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
