"""Training configuration: a frozen dataclass read from YAML/JSON plus ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.spec import SEARCH_REGIONS, ModelSpec
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from trainer.data.augment import AugmentParams

REPO_ROOT = Path(__file__).resolve().parent.parent
DECODERS = ("concat", "additive")
"""U-Net decoders of :class:`trainer.nn.models.UNet`."""
DICE_MODES = ("batch", "sample")
"""Soft Dice of fine-tuning: pooled over the batch, or averaged over the lesion patches."""
CANVASES = ("air",)
"""What surrounds a crop in evaluation: air, as in training."""
LUNG_CANVASES = ("air+lung",)
"""Training canvases that need lesion-free lung of a ``negative_series``: air and that lung
drawn with equal probability (``air+lung``)."""
TRAIN_CANVASES = (*CANVASES, *LUNG_CANVASES)
"""Every canvas a training patch may use."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of pretraining, fine-tuning and export (flat, so overrides stay simple).

    The defaults are the shipped model's recipe (``trainer/configs/default.yaml`` adds the
    paths of its data).

    Attributes
    ----------
    seed : int
        Seed of numpy and torch (data order, initialisation, augmentation).
    vois_dir : str
        Crop folder (``image/``, ``nodule_mask/``, ``nodules.csv``); required by ``cache``.
    negative_slices : str
        Comma-separated folders of adjacent unlabelled CT slices (DICOM) whose body gives
        negative windows; a folder that does not exist is skipped. Empty for none.
    cache : str
        Preprocessed patch cache (``.npz``) built from ``vois_dir``.
    out_dir : str
        Run folder: checkpoints, metrics, curves.
    slice_offsets_mm, pixel_spacing_mm, hu_window, size_multiple
        Model input contract, copied into the sidecar.
    patch_size : int
        Training patch height and width (pixels at ``pixel_spacing_mm``).
    base_width, levels, max_width : int
        U-Net width at full resolution, number of downsamplings, channel cap.
    decoder : {'concat', 'additive'}
        U-Net decoder (:class:`trainer.nn.models.UNet`); ``additive`` is cheaper on a CPU.
    latent_channels, beta : int, float
        VAE latent channels and KL weight.
    proj_dim, temperature : int, float
        Contrastive projection size and NT-Xent temperature.
    batch_size, lr, weight_decay, warmup_steps, steps : int or float
        Optimisation; ``steps`` counts optimizer steps of the current command.
    label_fraction : float
        Fraction of training patients whose labels fine-tuning uses.
    init : str
        Pretraining checkpoint whose encoder initialises the U-Net ("" = from scratch).
    negative_fraction : float
        Share of fine-tuning patches taken from lesion-free lung.
    subsolid_weight : float
        How much more often a part-solid or non-solid (ground-glass) crop is drawn than a
        solid one (1 = uniform over crops).
    crop_canvas : {'air', 'air+lung'}
        What surrounds a crop in its training patch: air, or, for half the crops, a
        lesion-free lung window of a ``negative_series`` with the lesion blended in.
    negative_series : str
        Comma-separated folders of whole LIDC series (DICOM plus reader XML) whose lung,
        less every reader's mark, gives lesion-free negative windows
        (:mod:`trainer.data.negatives`); empty for none. Those patients' whole series are then
        no longer unseen: evaluate on the others.
    negative_list : str
        JSON file listing whole CT series of any source for lesion-free negative windows,
        each with a mask of its lesions or declared lesion-free
        (:mod:`trainer.data.series_list`); empty for none.
    scene_list : str
        Series list whose whole series become training scenes (:mod:`trainer.data.scenes`):
        their real lesions in their surroundings, and ``scene_masses`` synthetic masses
        each (:mod:`trainer.data.masses`); empty for none.
    scene_masses : int
        Synthetic masses made in each series of ``scene_list``.
    scene_fraction : float
        Share of the training patches that are windows of the scenes (half centred on a
        lesion, half elsewhere in the lung field); pretraining draws its unlabelled windows
        from the scenes in the same share.
    search_region : {'lung', 'field'}
        Search region written to the sidecar (:attr:`engines.spec.ModelSpec.search_region`):
        ``field`` for a model trained on scenes.
    init_model : str
        An exported model (``.pt2``) whose whole U-Net starts fine-tuning (fine-tuning from
        a released model); its layers must match the config's by name and shape.
    test_fraction, val_fraction : float
        Patient shares of the held-out test split and of the validation split.
    bce_weight : float
        Weight of BCE next to soft Dice.
    dice_mode : {'batch', 'sample'}
        Soft Dice pooled over the batch, or averaged over the patches that hold lesion
        (each lesion slice weighs the same, as in the per-nodule mean Dice).
    aug_scale : list of float
        Range of the random zoom of every training patch.
    aug_contrast, aug_shift, aug_noise : float
        Largest relative contrast change, intensity shift and noise standard deviation
        (units of the [0, 1] model input; 0.02 is 28 HU in the default window).
    aug_gamma, aug_kernel : float
        Largest ``|log gamma|`` of a random intensity curve, and largest blur-or-sharpen
        amount standing in for other reconstruction kernels
        (:class:`trainer.data.augment.AugmentParams`); 0 for none, as every shipped model.
    eval_every : int
        Steps between validation passes.
    device : str
        ``cpu`` or ``cuda``.
    num_threads : int
        torch CPU threads.
    threshold, min_lesion_volume_mm3 : float
        Post-processing written to the sidecar.
    model_version : str
        Version written to the sidecar (it enters the output UIDs).
    """

    seed: int = 0
    vois_dir: str = ""
    cache: str = "runs/cache/patches.npz"
    out_dir: str = "runs/default"
    slice_offsets_mm: list = field(default_factory=lambda: [-2.0, 0.0, 2.0])
    pixel_spacing_mm: float = 0.78
    hu_window: list = field(default_factory=lambda: [-1000.0, 400.0])
    size_multiple: int = 16
    patch_size: int = 64
    base_width: int = 16
    levels: int = 4
    max_width: int = 128
    decoder: str = "additive"
    latent_channels: int = 32
    beta: float = 0.01
    proj_dim: int = 64
    temperature: float = 0.2
    batch_size: int = 32
    lr: float = 0.002
    weight_decay: float = 0.0001
    warmup_steps: int = 50
    steps: int = 1000
    label_fraction: float = 1.0
    init: str = ""
    negative_fraction: float = 0.5
    subsolid_weight: float = 1.0
    crop_canvas: str = "air"
    negative_slices: str = ""
    negative_series: str = ""
    negative_list: str = ""
    scene_list: str = ""
    scene_masses: int = 0
    scene_fraction: float = 0.0
    search_region: str = "lung"
    init_model: str = ""
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    bce_weight: float = 1.0
    dice_mode: str = "batch"
    aug_scale: list = field(default_factory=lambda: [0.85, 1.15])
    aug_contrast: float = 0.1
    aug_shift: float = 0.05
    aug_noise: float = 0.02
    aug_gamma: float = 0.0
    aug_kernel: float = 0.0
    eval_every: int = 200
    device: str = "cpu"
    num_threads: int = 2
    threshold: float = 0.5
    min_lesion_volume_mm3: float = 10.0
    model_version: str = "1.3.2"

    def __post_init__(self) -> None:
        if self.scene_masses < 0:
            raise ConfigError(f"scene_masses must be >= 0, got {self.scene_masses!r}")
        if not 0.0 <= self.scene_fraction + self.negative_fraction <= 1.0:
            raise ConfigError("scene_fraction + negative_fraction must be in [0, 1], got "
                              f"{self.scene_fraction!r} + {self.negative_fraction!r}")
        if self.search_region not in SEARCH_REGIONS:
            raise ConfigError(f"search_region must be one of {SEARCH_REGIONS}, "
                              f"got {self.search_region!r}")
        for name in ("label_fraction", "negative_fraction", "scene_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.subsolid_weight <= 0.0:
            raise ConfigError(f"subsolid_weight must be > 0, got {self.subsolid_weight!r}")
        if not 0.0 < self.test_fraction + self.val_fraction < 1.0:
            raise ConfigError("test_fraction + val_fraction must be in (0, 1)")
        for name in ("patch_size", "batch_size", "steps", "base_width", "levels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.patch_size % (2**self.levels):
            raise ConfigError(
                f"patch_size must be a multiple of {2**self.levels}, got {self.patch_size}"
            )
        if self.size_multiple % (2**self.levels):
            raise ConfigError(f"size_multiple must be a multiple of {2**self.levels}")
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            raise ConfigError(f"hu_window must be [low, high], low < high, got {self.hu_window}")
        if not self.slice_offsets_mm:
            raise ConfigError("slice_offsets_mm must name at least one offset")
        self._check_augmentation()
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.crop_canvas not in TRAIN_CANVASES:
            raise ConfigError(
                f"crop_canvas must be one of {TRAIN_CANVASES}, got {self.crop_canvas!r}")
        if self.dice_mode not in DICE_MODES:
            raise ConfigError(f"dice_mode must be one of {DICE_MODES}, got {self.dice_mode!r}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    def _check_augmentation(self) -> None:
        if len(self.aug_scale) != 2 or not 0.0 < self.aug_scale[0] <= self.aug_scale[1]:
            raise ConfigError(f"aug_scale must be [low, high], 0 < low <= high, got "
                              f"{self.aug_scale}")
        for name in ("aug_contrast", "aug_shift", "aug_noise", "aug_gamma"):
            if getattr(self, name) < 0.0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.aug_kernel <= 1.0:
            raise ConfigError(f"aug_kernel must be in [0, 1], got {self.aug_kernel!r}")

    def augment_params(self) -> AugmentParams:
        """Return the augmentation ranges of this config."""
        from trainer.data.augment import AugmentParams

        return AugmentParams(scale=(self.aug_scale[0], self.aug_scale[1]),
                             contrast=self.aug_contrast, shift=self.aug_shift,
                             noise=self.aug_noise, gamma=self.aug_gamma, kernel=self.aug_kernel)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain JSON-able data."""
        return dataclasses.asdict(self)


def _coerce(name: str, expected: Any, value: Any) -> Any:
    if isinstance(expected, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(expected, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(expected, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(expected, str):
        if isinstance(value, str):
            return value
    elif isinstance(expected, list):
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return [float(v) for v in value]
    raise ConfigError(
        f"config key {name!r} must be {type(expected).__name__}, got {value!r} "
        f"({type(value).__name__})"
    )


def _parse_value(text: str) -> Any:
    import yaml

    if not text.strip():
        return ""
    return yaml.safe_load(text)


def build_config(values: dict[str, Any]) -> TrainConfig:
    """Build a config from a mapping, rejecting unknown keys and wrong types.

    Raises
    ------
    ConfigError
        If a key is unknown or a value has the wrong type or range.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"config must be a mapping, got {type(values).__name__}")
    defaults = TrainConfig()
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config keys: {unknown}; known keys: {sorted(known)}")
    typed = {k: _coerce(k, getattr(defaults, k), v) for k, v in values.items()}
    return TrainConfig(**typed)


RETIRED_KEYS = {"init_scope": "encoder", "negative_islands": 0.0, "vae_augment_prob": 0.0,
                "vae_checkpoint": "", "pseudo_labels": "", "scene_dense": 0.0}
"""Keys of experiments that left the trainer (``experiments/``), with their neutral values."""
EARLIER_DEFAULTS = {"decoder": "concat", "negative_fraction": 0.25, "model_version": "1.0.0"}
"""Defaults before they became the shipped recipe: a saved config without the key meant these."""


def config_from_saved(values: dict[str, Any]) -> TrainConfig:
    """Build the config saved in a checkpoint or sidecar, also one of an older trainer.

    Retired keys (:data:`RETIRED_KEYS`) at their neutral value are dropped; a key the saved
    config lacks takes its default of that time (:data:`EARLIER_DEFAULTS`).

    Raises
    ------
    ConfigError
        If a retired key holds another value (the run used an experiment no longer in the
        trainer), or as :func:`build_config`.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"config must be a mapping, got {type(values).__name__}")
    used = sorted(k for k, neutral in RETIRED_KEYS.items()
                  if k in values and values[k] != neutral)
    if used:
        raise ConfigError(f"the saved config uses settings no longer in the trainer: {used} "
                          "(see experiments/README.md)")
    kept = {k: v for k, v in values.items() if k not in RETIRED_KEYS}
    return build_config({**EARLIER_DEFAULTS, **kept})


CONFIG_GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("seed", "device", "num_threads", "out_dir", "eval_every"),
    "data": ("vois_dir", "cache", "negative_slices", "negative_series", "negative_list",
             "scene_list", "scene_masses", "test_fraction", "val_fraction", "label_fraction"),
    "input": ("slice_offsets_mm", "pixel_spacing_mm", "hu_window", "size_multiple",
              "patch_size"),
    "model": ("base_width", "levels", "max_width", "decoder", "latent_channels", "proj_dim"),
    "pretrain": ("beta", "temperature"),
    "finetune": ("batch_size", "lr", "weight_decay", "warmup_steps", "steps", "init",
                 "init_model", "negative_fraction", "scene_fraction", "subsolid_weight",
                 "crop_canvas", "bce_weight", "dice_mode"),
    "augment": ("aug_scale", "aug_contrast", "aug_shift", "aug_noise", "aug_gamma",
                "aug_kernel"),
    "output": ("threshold", "min_lesion_volume_mm3", "search_region", "model_version"),
}
"""The config's keys by job. A config file may hold them in these sections (``finetune:``
then ``steps: 3000``) or flat; an override may name a key as ``finetune.steps`` or
``steps``. The keys stay flat on :class:`TrainConfig`."""


def flatten_groups(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Return ``values`` with each group section (:data:`CONFIG_GROUPS`) spread out flat.

    Raises
    ------
    ConfigError
        If a section is not a mapping, names a key outside its group, or a key appears
        twice; ``where`` names the file or override in the message.
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        items = _section(key, value, where) if key in CONFIG_GROUPS else {key: value}
        for name, item in items.items():
            if name in flat:
                raise ConfigError(f"{where}: key {name!r} is given twice")
            flat[name] = item
    return flat


def _section(group: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: section {group!r} must be a mapping of its keys, "
                          f"got {type(value).__name__}")
    stray = sorted(set(value) - set(CONFIG_GROUPS[group]))
    if stray:
        raise ConfigError(f"{where}: {stray} are not keys of section {group!r} "
                          f"(its keys: {list(CONFIG_GROUPS[group])})")
    return dict(value)


def _override_key(key: str) -> str:
    group, dot, name = key.partition(".")
    if not dot:
        return key
    if group not in CONFIG_GROUPS or name not in CONFIG_GROUPS[group]:
        raise ConfigError(f"override key {key!r}: {name!r} is not a key of section {group!r}"
                          + (f" (its keys: {list(CONFIG_GROUPS[group])})"
                             if group in CONFIG_GROUPS else
                             f" (sections: {list(CONFIG_GROUPS)})"))
    return name


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML or JSON config file and apply ``key=value`` overrides.

    Parameters
    ----------
    path : str or Path, optional
        Config file (``.yaml``, ``.yml`` or ``.json``), flat or in the sections of
        :data:`CONFIG_GROUPS`; None starts from the defaults.
    overrides : list of str, optional
        ``key=value`` or ``section.key=value`` strings; values are parsed as YAML
        scalars/lists.

    Raises
    ------
    ConfigError
        If the file is missing or malformed, an override has no ``=``, or a key/type is wrong.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text()
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            values = _parse_value(text) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping")
        values = flatten_groups(values, str(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override must be key=value, got {item!r}")
        values[_override_key(key.strip())] = _parse_value(raw)
    return build_config(values)


def spec_from_config(cfg: TrainConfig, extra: dict | None = None) -> ModelSpec:
    """Return the sidecar spec implied by the config's input settings."""
    return ModelSpec(
        name="lungseg-unet",
        version=cfg.model_version,
        architecture=(
            f"2.5D U-Net (base {cfg.base_width}, {cfg.levels} levels"
            + (", additive decoder)" if cfg.decoder == "additive" else ")")
        ),
        slice_offsets_mm=tuple(cfg.slice_offsets_mm),
        pixel_spacing_mm=cfg.pixel_spacing_mm,
        hu_window=(cfg.hu_window[0], cfg.hu_window[1]),
        size_multiple=cfg.size_multiple,
        threshold=cfg.threshold,
        min_lesion_volume_mm3=cfg.min_lesion_volume_mm3,
        search_region=cfg.search_region,
        extra=extra or {},
    )
