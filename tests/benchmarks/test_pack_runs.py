import torch

from benchmarks.pack_runs import pack, unpack
from trainer.config import build_config
from trainer.nn.models import build_model
from trainer.train.checkpoint import save_checkpoint


def _run(folder, name: str, seed: int, checkpoint: str):
    cfg = build_config({"base_width": 4, "levels": 2, "max_width": 8, "patch_size": 32})
    torch.manual_seed(seed)
    model = build_model("UNet", cfg)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(1.0e5)  # beyond fp16's range
    (folder / name).mkdir(parents=True)
    save_checkpoint(folder / name / checkpoint, model, None, cfg, 5, 0, [])
    return model


def test_pack_and_unpack_keep_weights_and_large_batch_norm_statistics(tmp_path):
    runs = tmp_path / "runs"
    models = {"a": _run(runs, "a", 0, "final.pt"), "b": _run(runs, "b", 1, "last.pt")}
    (runs / "logs").mkdir()  # a folder without a checkpoint is skipped
    groups = pack(runs, tmp_path / "packed", max_mb=0.001)
    assert groups == [["a"], ["b"]]
    rows = unpack(tmp_path / "packed", tmp_path / "back")
    assert rows == [("a", 5, "final.pt"), ("b", 5, "last.pt")]
    for name, model in models.items():
        back = torch.load(tmp_path / "back" / name / "final.pt", weights_only=False)
        assert back["optimizer"] is None
        for key, value in model.state_dict().items():
            got = back["state_dict"][key]
            assert torch.isfinite(got.float()).all(), key
            if value.is_floating_point():
                assert got.dtype == torch.float32
                assert torch.allclose(got, value, rtol=1e-3, atol=1e-4), key


def test_unpack_of_a_folder_without_packs_restores_nothing(tmp_path):
    assert unpack(tmp_path, tmp_path / "out") == []
