"""Derive the shape gate's limits from the model's own predictions on training nodules.

``trainer shape-limits`` runs the exported model on the crops of the training patients (the
split every other trainer command uses), measures the largest predicted component of each
crop with :func:`pipeline.shape.largest_component_shape`, and writes percentile limits into
the model sidecar (and into the int8 sibling's), where the pipeline reads them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from engines.quantize import int8_path
from engines.spec import ModelSpec, read_spec, sidecar_path, write_spec
from pipeline.shape import (
    ComponentShape,
    check_percent,
    largest_component_shape,
    limits_from_shapes,
)
from trainer.config import TrainConfig
from trainer.data.datasets import CropRecord, list_crops, patient_split, read_crop


def training_records(vois_dir: str | Path, cfg: TrainConfig) -> list[CropRecord]:
    """Crops of the training patients of ``cfg``'s split (seed 0, as in fine-tuning)."""
    records = list_crops(vois_dir)
    split = patient_split([r.patient for r in records], cfg.test_fraction, cfg.val_fraction,
                          seed=0)
    train = set(split["train"])
    return [r for r in records if r.patient in train]


def predicted_shapes(model_path: str | Path, records: list[CropRecord],
                     threads: int = 2) -> list[ComponentShape]:
    """Shapes of the largest predicted component of each crop (fp32 model, crop in air).

    Crops where the model predicts nothing are skipped.
    """
    from engines import create_engine
    from trainer.evaluation.evaluate import crop_model_segmenter

    shapes = []
    with create_engine("onnx", model_path, threads=threads, precision="fp32") as engine:
        segment = crop_model_segmenter(engine)
        for rec in records:
            hu, _, spacing, z = read_crop(rec)
            shape = largest_component_shape(segment(hu, spacing, z), spacing)
            if shape is not None:
                shapes.append(shape)
    return shapes


def with_shape_limits(spec: ModelSpec, limits: dict[str, float], provenance: dict,
                      version: str | None = None) -> ModelSpec:
    """Return ``spec`` with ``limits`` and their provenance (``extra['shape_gate']``)."""
    extra = {**spec.extra, "shape_gate": provenance}
    return dataclasses.replace(spec, shape_limits=dict(limits), extra=extra,
                               version=version or spec.version)


def write_shape_limits(model_path: str | Path, limits: dict[str, float], provenance: dict,
                       version: str | None = None) -> list[Path]:
    """Write ``limits`` into the sidecar of ``model_path`` and of its int8 sibling if present.

    Returns
    -------
    list of Path
        The sidecars written.
    """
    written = []
    for path in (Path(model_path), int8_path(model_path)):
        if path.exists() and sidecar_path(path).exists():
            spec = with_shape_limits(read_spec(path), limits, provenance, version)
            written.append(write_spec(spec, path))
    return written


def derive_shape_limits(model_path: str | Path, vois_dir: str | Path, cfg: TrainConfig,
                        percent: float = 0.5, threads: int = 2) -> tuple[dict, dict]:
    """Compute the limits of ``model_path`` on the training crops of ``vois_dir``.

    Returns
    -------
    limits : dict
        ``max_elongation``, ``max_flatness``, ``min_roundness``.
    provenance : dict
        How they were computed (for the sidecar).

    Raises
    ------
    ValueError
        If ``percent`` is not in (0, 50), no training crop is found or the model predicts
        nothing on any of them.
    """
    check_percent(percent)
    records = training_records(vois_dir, cfg)
    if not records:
        raise ValueError(f"no crops of the training patients in {vois_dir}")
    shapes = predicted_shapes(model_path, records, threads)
    limits = {k: round(v, 4) for k, v in limits_from_shapes(shapes, percent).items()}
    provenance = {
        "limits_from": "largest predicted component per crop (fp32 model, crop in air) on the "
                       "training patients' crops",
        "percent_per_tail": percent, "crops": len(records), "components": len(shapes),
        "patients": len({r.patient for r in records}), "vois": Path(vois_dir).name,
    }
    return limits, provenance


def summary(limits: dict, provenance: dict, written: list[Path]) -> str:
    """One JSON line for the command line."""
    return json.dumps({"shape_limits": limits, "components": provenance["components"],
                       "written": [str(p) for p in written]})
