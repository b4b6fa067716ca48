import pytest

from pipeline.errors import ConfigError
from trainer.config import REPO_ROOT, load_config


def test_recipes_load_and_overrides_are_typed(tmp_path):
    cfg = load_config(REPO_ROOT / "trainer" / "configs" / "default.yaml",
                      ["lr=1e-3", "steps=7", "init=", "slice_offsets_mm=[-1, 0, 1]"])
    assert cfg.lr == 0.001 and cfg.steps == 7 and cfg.init == ""
    assert cfg.slice_offsets_mm == [-1.0, 0.0, 1.0]
    assert load_config(REPO_ROOT / "trainer" / "configs" / "tiny.yaml").base_width == 4


@pytest.mark.parametrize("override, match", [
    ("stepz=3", "unknown config keys"), ("steps=3.5", "must be int"),
    ("lr=fast", "must be float"), ("device=tpu", "device"), ("label_fraction=2", r"\[0, 1\]"),
    ("steps", "key=value"), ("hu_window=[400, -1000]", "hu_window"),
    ("slice_offsets_mm=[]", "slice_offsets_mm"), ("dice_mode=voxel", "dice_mode"),
    ("pseudo_labels=x.npz", "unknown config keys"), ("aug_scale=[1.2, 0.8]", "aug_scale"),
    ("aug_kernel=1.5", "aug_kernel"), ("aug_gamma=-0.1", "aug_gamma"),
])
def test_bad_overrides_rejected(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_augmentation_keys_reach_the_params():
    cfg = load_config(None, ["aug_scale=[0.75, 1.33]", "aug_gamma=0.3", "aug_kernel=0.8"])
    p = cfg.augment_params()
    assert p.scale == (0.75, 1.33) and p.gamma == 0.3 and p.kernel == 0.8
    assert p.noise == 0.02 and p.contrast == 0.1


def test_saved_configs_of_older_trainers_still_load():
    import json

    from trainer.config import config_from_saved

    sidecar = json.loads((REPO_ROOT / "models" / "lungseg-unet.json").read_text())
    saved = sidecar["extra"]["training"]["config"]
    assert "pseudo_labels" in saved and "vae_augment_prob" in saved
    cfg = config_from_saved(saved)
    assert cfg.decoder == "additive" and cfg.steps == saved["steps"]
    older = {k: v for k, v in saved.items() if k not in ("decoder", "negative_fraction")}
    assert config_from_saved(older).decoder == "concat"  # the default when it was saved
    assert config_from_saved(older).negative_fraction == 0.25
    with pytest.raises(ConfigError, match="no longer in the trainer.*negative_islands"):
        config_from_saved({**saved, "negative_islands": 0.2})


def test_cli_one_line_for_user_errors_traceback_for_bugs(monkeypatch, capsys, tmp_path):
    from trainer import cli

    missing = str(tmp_path / "none.yaml")
    assert cli.main(["cache", "--config", missing]) == 2
    assert capsys.readouterr().err.strip() == f"trainer: error: config file not found: {missing}"
    with pytest.raises(ConfigError, match="config file not found"):
        cli.main(["--debug", "cache", "--config", missing])

    def bug(args):
        raise TypeError("a programming error")

    monkeypatch.setattr(cli, "_config", bug)
    with pytest.raises(TypeError, match="a programming error"):
        cli.main(["cache"])


def test_defaults_are_the_shipped_recipe():
    from trainer.config import TrainConfig

    recipe = load_config(REPO_ROOT / "trainer" / "configs" / "default.yaml").to_dict()
    defaults = TrainConfig().to_dict()
    differ = {k for k in defaults if defaults[k] != recipe[k]}
    assert differ == {"vois_dir", "negative_slices"}  # the data paths only


def test_config_file_in_sections_equals_the_flat_one(tmp_path):
    from dataclasses import fields

    from trainer.config import CONFIG_GROUPS, TrainConfig

    flat = tmp_path / "flat.yaml"
    flat.write_text("steps: 7\nbase_width: 8\nlr: 0.01\nscene_list: a.json\n")
    grouped = tmp_path / "grouped.yaml"
    grouped.write_text("finetune:\n  steps: 7\n  lr: 0.01\nmodel:\n  base_width: 8\n"
                       "data:\n  scene_list: a.json\n")
    assert load_config(flat) == load_config(grouped)
    dotted = load_config(grouped, ["finetune.steps=9", "base_width=4"])
    assert (dotted.steps, dotted.base_width) == (9, 4)
    every = [k for keys in CONFIG_GROUPS.values() for k in keys]
    assert sorted(every) == sorted(f.name for f in fields(TrainConfig))


@pytest.mark.parametrize(("text", "overrides", "message"), [
    ("model:\n  steps: 3\n", [], "not keys of section 'model'"),
    ("model: 3\n", [], "must be a mapping"),
    ("steps: 3\nfinetune:\n  steps: 4\n", [], "given twice"),
    ("", ["model.steps=3"], "not a key of section 'model'"),
    ("", ["train.steps=3"], "sections:"),
])
def test_config_sections_refuse_misplaced_keys(tmp_path, text, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(text or "seed: 0\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, overrides)
