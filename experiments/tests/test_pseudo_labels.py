import json

import numpy as np
import pytest

from experiments.pseudo_labels import CANVAS_MARGIN_PX, apply_pseudo_labels, in_air_canvas
from experiments.pseudo_labels import main as pseudo_main
from trainer.cli import main
from trainer.config import REPO_ROOT, load_config
from trainer.data.datasets import label_subset, patient_split
from trainer.data.patches import PatchCache

TINY = str(REPO_ROOT / "trainer" / "configs" / "tiny.yaml")


def test_in_air_canvas_centres_the_crop_in_air():
    image = np.random.default_rng(0).integers(1, 256, (2, 3, 21, 40), dtype=np.uint8)
    canvas, (ys, xs) = in_air_canvas(image, patch=32, multiple=16)
    assert canvas.shape == (2, 3, 64, 64)  # 40 + 2 * 8 = 56, rounded up to 64
    assert canvas.dtype == np.float32
    np.testing.assert_allclose(canvas[..., ys, xs], image / 255.0, rtol=1e-6)
    inner = np.zeros(canvas.shape[-2:], bool)
    inner[ys, xs] = True
    assert not canvas[..., ~inner].any()
    assert ys.start >= CANVAS_MARGIN_PX and xs.start >= CANVAS_MARGIN_PX
    assert abs((64 - ys.stop) - ys.start) <= 1 and abs((64 - xs.stop) - xs.start) <= 1


def test_in_air_canvas_is_at_least_a_patch():
    canvas, _ = in_air_canvas(np.ones((1, 3, 5, 5), np.uint8), patch=64, multiple=16)
    assert canvas.shape[-2:] == (80, 80)


@pytest.mark.slow
def test_pseudo_labels_cover_exactly_the_unlabelled_training_crops(tiny_vois, tmp_path, capsys):
    common = ["--config", TINY, "--set", f"vois_dir={tiny_vois}",
              "--set", f"cache={tmp_path / 'cache.npz'}", "--set", "label_fraction=0.5"]
    assert main(["cache", *common]) == 0
    assert main(["finetune", *common, "--set", f"out_dir={tmp_path / 'teacher'}"]) == 0
    out = tmp_path / "pseudo.npz"
    assert pseudo_main(["label", *common, "--teacher", str(tmp_path / "teacher" / "final.pt"),
                        "--out", str(out)]) == 0

    cfg = load_config(TINY, [f"vois_dir={tiny_vois}", f"cache={tmp_path / 'cache.npz'}",
                             "label_fraction=0.5"])
    cache = PatchCache(cfg.cache)
    patients = sorted({m["patient"] for m in cache.meta if not m["negative"]})
    split = patient_split(patients, cfg.test_fraction, cfg.val_fraction, seed=0)
    unlabelled = set(split["train"]) - set(label_subset(split["train"], 0.5, seed=0))
    expected = sorted(m["name"] for m in cache.meta
                      if not m["negative"] and m["patient"] in unlabelled)
    with np.load(out) as data:
        info = json.loads(str(data["info"]))
        shapes, labels = data["shapes"], data["labels"]
    assert expected and sorted(info["names"]) == expected
    assert info["threshold"] == 0.5 and len(info["teacher_sha256"]) == 64
    by_name = {m["name"]: i for i, m in enumerate(cache.meta)}
    assert [tuple(s) for s in shapes] == [cache.labels[by_name[n]].shape for n in info["names"]]
    assert labels.size == sum(int(np.prod(s)) for s in shapes)
    assert set(np.unique(labels)) <= {0, 1}

    entries = apply_pseudo_labels(cache, out, cfg)
    assert [cache.meta[e]["name"] for e in entries] == info["names"]
    start = 0
    for e, shape in zip(entries, shapes, strict=True):
        size = int(np.prod(shape))
        np.testing.assert_array_equal(cache.labels[e], labels[start : start + size].reshape(shape))
        start += size

    student = ["finetune", *common, "--set", f"out_dir={tmp_path / 'student'}",
               "--labels", str(out)]
    assert pseudo_main(student) == 0
    import torch

    extra = torch.load(tmp_path / "student" / "final.pt", weights_only=False)["extra"]
    assert extra["pseudo_labelled_crops"] == len(expected)


@pytest.mark.slow
def test_pseudo_labels_reject_wrong_files(tiny_vois, tmp_path, capsys):
    common = ["--config", TINY, "--set", f"vois_dir={tiny_vois}",
              "--set", f"cache={tmp_path / 'cache.npz'}"]
    assert main(["cache", *common]) == 0
    assert main(["finetune", *common, "--set", f"out_dir={tmp_path / 't'}"]) == 0
    teacher = ["--teacher", str(tmp_path / "t" / "final.pt")]
    with pytest.raises(ValueError, match="leaves no training patient unlabelled"):
        pseudo_main(["label", *common, *teacher, "--out", str(tmp_path / "x.npz")])

    half = [*common, "--set", "label_fraction=0.5"]
    out = tmp_path / "pseudo.npz"
    assert pseudo_main(["label", *half, *teacher, "--out", str(out)]) == 0
    # With every training patient labelled, a pseudo-labelled crop would overwrite a real mask.
    with pytest.raises(ValueError, match="of a labelled, validation or test patient"):
        pseudo_main(["finetune", *common, "--set", f"out_dir={tmp_path / 's'}",
                     "--labels", str(out)])
    with np.load(out) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["shapes"] = arrays["shapes"] + np.array([0, 1, 0])
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="has shape"):
        pseudo_main(["finetune", *half, "--set", f"out_dir={tmp_path / 's2'}",
                     "--labels", str(bad)])
    with pytest.raises(FileNotFoundError, match="pseudo-label file not found"):
        pseudo_main(["finetune", *half, "--set", f"out_dir={tmp_path / 's3'}",
                     "--labels", str(tmp_path / "missing.npz")])
