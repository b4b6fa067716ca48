"""The model sidecar: everything inference needs to rebuild training-time preprocessing.

An exported model ``model.onnx`` travels with ``model.json`` (same stem). The trainer writes it,
every engine and the pipeline read it, so preprocessing at inference is exactly the one used in
training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SIDECAR_FORMAT = "lungseg-model/1"
SHAPE_LIMIT_KEYS = ("max_elongation", "max_flatness", "min_roundness")


def check_shape_limits(limits: dict[str, float]) -> None:
    """Raise ValueError unless ``limits`` maps keys of :data:`SHAPE_LIMIT_KEYS` to numbers > 0."""
    unknown = sorted(set(limits) - set(SHAPE_LIMIT_KEYS))
    if unknown:
        raise ValueError(f"unknown shape_limits keys {unknown}; known: {list(SHAPE_LIMIT_KEYS)}")
    bad = {k: v for k, v in limits.items()
           if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0}
    if bad:
        raise ValueError(f"shape_limits must be positive numbers, got {bad!r}")


SEARCH_REGIONS = ("lung", "field")
"""Search regions a sidecar may declare (:attr:`ModelSpec.search_region`)."""


@dataclass(frozen=True)
class ModelSpec:
    """Input/output contract of an exported segmentation model.

    Attributes
    ----------
    name, version : str
        Model name and version (the version enters output UIDs).
    architecture : str
        Human-readable architecture name.
    slice_offsets_mm : tuple of float
        Input channels: the CT at these z offsets (mm) around the slice being segmented,
        linearly interpolated between slices. ``(0.0,)`` is plain 2D.
    pixel_spacing_mm : float
        In-plane spacing (mm) the model was trained at; slices are resampled to it.
    hu_window : tuple of float
        HU values mapped to 0 and 1 (clipped outside).
    size_multiple : int
        Height and width fed to the model must be multiples of this.
    threshold : float
        Probability above which a voxel is lesion.
    min_lesion_volume_mm3 : float
        Connected components smaller than this are discarded.
    shape_limits : dict
        Components shaped outside these limits are discarded (keys of
        :data:`SHAPE_LIMIT_KEYS`, see :mod:`pipeline.shape`); empty: no shape gate.
    search_region : {'lung', 'field'}
        Where the pipeline looks for lesions: ``'lung'``, the aerated lung grown by 5 mm;
        ``'field'``, each lung's outline with its concavities filled
        (:mod:`pipeline.lungfield`), which also holds masses against the chest wall, the
        spine and the mediastinum. A model's false positives are measured in the region it
        declares; sidecars without the key are ``'lung'``.
    extra : dict
        Free-form provenance: training data, split, metrics.
    """

    name: str
    version: str
    architecture: str
    slice_offsets_mm: tuple[float, ...]
    pixel_spacing_mm: float
    hu_window: tuple[float, float]
    size_multiple: int = 16
    threshold: float = 0.5
    min_lesion_volume_mm3: float = 10.0
    shape_limits: dict[str, float] = field(default_factory=dict)
    search_region: str = "lung"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.slice_offsets_mm:
            raise ValueError("slice_offsets_mm must name at least one offset, got ()")
        if self.pixel_spacing_mm <= 0:
            raise ValueError(f"pixel_spacing_mm must be > 0, got {self.pixel_spacing_mm!r}")
        lo, hi = self.hu_window
        if not lo < hi:
            raise ValueError(
                f"hu_window must be (low, high) with low < high, got {self.hu_window!r}"
            )
        if self.size_multiple < 1:
            raise ValueError(f"size_multiple must be >= 1, got {self.size_multiple!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")
        check_shape_limits(self.shape_limits)
        if self.search_region not in SEARCH_REGIONS:
            raise ValueError(
                f"search_region must be one of {SEARCH_REGIONS}, got {self.search_region!r}"
            )

    @property
    def in_channels(self) -> int:
        """Number of input channels (one per slice offset)."""
        return len(self.slice_offsets_mm)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-serialisable sidecar content."""
        data = asdict(self)
        data["format"] = SIDECAR_FORMAT
        data["slice_offsets_mm"] = list(self.slice_offsets_mm)
        data["hu_window"] = list(self.hu_window)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        """Build a spec from sidecar content.

        Raises
        ------
        ValueError
            If the format tag is wrong or a key is missing or unknown.
        """
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != SIDECAR_FORMAT:
            raise ValueError(f"sidecar format must be {SIDECAR_FORMAT!r}, got {fmt!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sidecar keys: {unknown}")
        data["slice_offsets_mm"] = tuple(float(v) for v in data["slice_offsets_mm"])
        data["hu_window"] = tuple(float(v) for v in data["hu_window"])
        return cls(**data)


def sidecar_path(model_path: str | Path) -> Path:
    """Return the sidecar JSON path of a model file (same stem, ``.json``)."""
    return Path(model_path).with_suffix(".json")


def read_spec(model_path: str | Path) -> ModelSpec:
    """Read the sidecar of ``model_path``.

    Raises
    ------
    FileNotFoundError
        If the sidecar does not exist.
    ValueError
        If its content is not a valid sidecar.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model sidecar not found: {path} (expected next to {model_path})")
    return ModelSpec.from_json(json.loads(path.read_text()))


def write_spec(spec: ModelSpec, model_path: str | Path) -> Path:
    """Write the sidecar of ``model_path`` and return its path."""
    path = sidecar_path(model_path)
    path.write_text(json.dumps(spec.to_json(), indent=2, sort_keys=True) + "\n")
    return path
