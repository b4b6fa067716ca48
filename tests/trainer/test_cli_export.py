import json

import numpy as np
import pytest
import torch

from trainer.cli import main
from trainer.config import REPO_ROOT, build_config
from trainer.nn.models import build_model

TINY = str(REPO_ROOT / "trainer" / "configs" / "tiny.yaml")


@pytest.mark.parametrize("decoder", ["concat", "additive"])
def test_export_parity_and_sidecar(tmp_path, decoder):
    pytest.importorskip("onnxruntime")
    from engines import create_engine
    from trainer.export.exporter import export_checkpoint
    from trainer.train.checkpoint import save_checkpoint

    cfg = build_config({"base_width": 4, "levels": 2, "max_width": 8, "patch_size": 32,
                        "decoder": decoder})
    model = build_model("UNet", cfg)
    _randomise_batch_norm(model)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, None, cfg, 0, 0, [])
    spec, parity = export_checkpoint(ckpt, tmp_path / "m.onnx", {"note": "x"})
    assert parity < 1e-4 and spec.in_channels == 3 and spec.extra["note"] == "x"
    assert ("additive decoder" in spec.architecture) == (decoder == "additive")
    assert spec.version == cfg.model_version
    assert export_checkpoint(ckpt, tmp_path / "v.onnx", with_pt2=False,
                             version="9.9.9")[0].version == "9.9.9"
    assert (tmp_path / "m.pt2").is_file()
    x = np.random.default_rng(0).random((3, 3, 48, 32), dtype=np.float32)
    with create_engine("onnx", tmp_path / "m.onnx", threads=1) as engine:
        got = engine.infer(x)
    with torch.no_grad():
        ref = torch.sigmoid(model.eval()(torch.from_numpy(x))).numpy()
    assert got.shape == (3, 1, 48, 32) and np.abs(got - ref).max() < 1e-4
    program = torch.export.load(str(tmp_path / "m.pt2"))
    with torch.no_grad():
        got_pt2 = program.module()(torch.from_numpy(x)).numpy()
    assert np.abs(got_pt2 - ref).max() < 1e-4


def _tiny_checkpoint(tmp_path, name: str, seed: int, **overrides):
    from trainer.train.checkpoint import save_checkpoint

    cfg = build_config({"base_width": 4, "levels": 2, "max_width": 8, "patch_size": 32,
                        "seed": seed, **overrides})
    torch.manual_seed(seed)
    model = build_model("UNet", cfg)
    _randomise_batch_norm(model)
    return model, save_checkpoint(tmp_path / f"{name}.pt", model, None, cfg, 7, 0, [])


def test_export_ensemble_is_the_mean_of_its_members(tmp_path):
    pytest.importorskip("onnxruntime")
    from engines import create_engine

    (model_a, ckpt_a), (model_b, ckpt_b) = (_tiny_checkpoint(tmp_path, n, s)
                                            for n, s in (("a", 0), ("b", 1)))
    onnx = tmp_path / "ens.onnx"
    assert main(["export", "--checkpoint", str(ckpt_a), "--checkpoint", str(ckpt_b),
                 "--out", str(onnx), "--no-pt2"]) == 0
    sidecar = json.loads(onnx.with_suffix(".json").read_text())
    members = sidecar["extra"]["ensemble"]["members"]
    assert [m["seed"] for m in members] == [0, 1]
    assert sidecar["architecture"].startswith("mean of 2")
    single = sum(p.numel() for p in model_a.parameters())
    assert sidecar["extra"]["parameters"] == 2 * single
    x = np.random.default_rng(1).random((2, 3, 32, 48), dtype=np.float32)
    with create_engine("onnx", onnx, threads=1) as engine:
        got = engine.infer(x)
    with torch.no_grad():
        probs = [torch.sigmoid(m.eval()(torch.from_numpy(x))).numpy() for m in (model_a, model_b)]
    assert np.abs(probs[0] - probs[1]).max() > 1e-3  # the members really differ
    assert np.abs(got - (probs[0] + probs[1]) / 2).max() < 1e-4


def test_export_ensemble_refuses_members_with_other_inputs(tmp_path):
    from trainer.export.exporter import export_checkpoint

    _, ckpt_a = _tiny_checkpoint(tmp_path, "a", 0)
    _, ckpt_b = _tiny_checkpoint(tmp_path, "b", 1, slice_offsets_mm=[0.0])
    with pytest.raises(ValueError, match="differs from .* in slice_offsets_mm"):
        export_checkpoint([ckpt_a, ckpt_b], tmp_path / "ens.onnx", with_pt2=False)
    assert not (tmp_path / "ens.onnx").exists()


def _randomise_batch_norm(model: torch.nn.Module) -> None:
    """Give batch norm non-trivial statistics, so parity covers the folded layers."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)


@pytest.mark.slow
def test_cli_tiny_recipe_end_to_end(tiny_vois, tmp_path, capsys):
    common = ["--config", TINY, "--set", f"vois_dir={tiny_vois}",
              "--set", f"cache={tmp_path / 'cache.npz'}"]
    assert main(["cache", *common]) == 0
    assert main(["pretrain-vae", *common, "--set", f"out_dir={tmp_path / 'vae'}"]) == 0
    assert main(["pretrain-contrastive", *common, "--set", f"out_dir={tmp_path / 'con'}",
                 "--set", f"init={tmp_path / 'vae' / 'final.pt'}"]) == 0
    assert main(["export", "--checkpoint", str(tmp_path / "vae" / "final.pt"),
                 "--out", str(tmp_path / "v.onnx"), "--no-pt2"]) == 2
    assert "must hold a UNet, got VAE" in capsys.readouterr().err
    ft = ["finetune", *common, "--set", f"out_dir={tmp_path / 'ft'}",
          "--set", f"init={tmp_path / 'con' / 'final.pt'}"]
    assert main(ft) == 0
    for name in ("final.pt", "curves.png", "overlays.png", "metrics.jsonl"):
        assert (tmp_path / "ft" / name).is_file()
    history = [json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").open()]
    assert [h["step"] for h in history] == [2, 3]
    assert main([*ft, "--set", "steps=4"]) == 0  # resumes from last.pt at step 3
    assert len((tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()) == 3
    onnx = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "ft" / "final.pt"), "--out", str(onnx),
                 "--no-pt2", "--model-version", "2.0.1"]) == 0
    assert json.loads(onnx.with_suffix(".json").read_text())["version"] == "2.0.1"
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(onnx), "--vois", str(tiny_vois),
                 "--patients", "LIDC-IDRI-0004,LIDC-IDRI-0005", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 3 and 0.0 <= result["dice_mean"] <= 1.0
    assert set(result["by_texture"]) <= {"solid", "part-solid", "non-solid", "unknown"}


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["finetune", "--set", "nope=1"]) == 2
    assert "unknown config keys" in capsys.readouterr().err
    assert main(["cache", "--set", f"vois_dir={tmp_path}"]) == 2
    assert "crop folder layout" in capsys.readouterr().err
