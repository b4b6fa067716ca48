import numpy as np
import pytest
import torch

from trainer.anomaly import ReconstructionError, export_anomaly, score_statistics
from trainer.config import build_config
from trainer.nn.models import build_model
from trainer.train.checkpoint import save_checkpoint

CFG = build_config({"base_width": 4, "levels": 2, "max_width": 8, "patch_size": 32,
                    "latent_channels": 2})


def test_score_statistics_known_values():
    stats = score_statistics(np.arange(1, 101, dtype=float))
    assert stats["mean"] == pytest.approx(50.5) and stats["p50"] == pytest.approx(50.5)
    assert stats["n_patches"] == 100 and stats["p99"] == pytest.approx(99.01)
    with pytest.raises(ValueError):
        score_statistics(np.array([]))


def test_reconstruction_error_matches_manual():
    vae = build_model("VAE", CFG).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        scores = ReconstructionError(vae)(x)
        mu, _ = vae.encode(x)
        manual = ((vae.decode(mu) - x) ** 2).mean(dim=(1, 2, 3))
    assert scores.shape == (3,) and torch.allclose(scores, manual)


def test_export_anomaly_rejects_non_vae(tmp_path):
    ckpt = save_checkpoint(tmp_path / "u.pt", build_model("UNet", CFG), None, CFG, 0, 0, [])
    with pytest.raises(ValueError, match="VAE"):
        export_anomaly(ckpt, tmp_path / "v.onnx", CFG)
