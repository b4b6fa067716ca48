"""One CT series in, lesion label map, measurements, DICOM-SEG and SR out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

import engines
from pipeline.baseline import BaselineParams, kmeans_segment, threshold_segment
from pipeline.errors import ConfigError, EngineError, SeriesRejected
from pipeline.inference import segment_with_engine
from pipeline.lungs import fast_lung_mask
from pipeline.measure import Lesion, measure_lesions
from pipeline.postprocess import label_lesions
from pipeline.seg_writer import Algorithm, write_seg
from pipeline.series import CTSeries, Source, load_series, load_series_dir
from pipeline.sr_writer import write_sr
from pipeline.version import __version__

log = logging.getLogger(__name__)
SEGMENTERS = ("auto", "model", "threshold", "kmeans")


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one pipeline run.

    Attributes
    ----------
    segmenter : {'auto', 'model', 'threshold', 'kmeans'}
        ``auto`` and ``model`` use the model and fail when its file is missing; the
        baselines run only when asked for by name.
    engine : str
        :func:`engines.create_engine` kind.
    model_path : str, optional
        Model file; default :func:`engines.default_model_path`.
    threads : int, optional
        Threads for SimpleITK and the engine (default: library default).
    seg_series_number, sr_series_number : int
        SeriesNumber of the outputs.
    min_slices : int
        Series with fewer slices are rejected.
    batch_size : int
        Slices per engine call.
    engine_options : tuple of (str, object) pairs
        Backend options passed to :func:`engines.create_engine` (e.g.
        ``(("device", "cuda"), ("dtype", "fp16"))`` for the torch engine).
    shape_gate : bool
        Apply the model sidecar's ``shape_limits`` (:mod:`pipeline.shape`). Off, the output
        version gains ``+no-shape-gate`` (it enters the output UIDs and the SEG/SR).
    """

    segmenter: str = "auto"
    engine: str = "onnx"
    model_path: str | None = None
    threads: int | None = None
    seg_series_number: int = 9901
    sr_series_number: int = 9902
    min_slices: int = 10
    batch_size: int = 8
    engine_options: tuple[tuple[str, object], ...] = ()
    shape_gate: bool = True

    def __post_init__(self) -> None:
        if self.segmenter not in SEGMENTERS:
            raise ConfigError(f"segmenter must be one of {SEGMENTERS}, got {self.segmenter!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads!r}")
        if self.min_slices < 2:
            raise ConfigError(f"min_slices must be >= 2, got {self.min_slices!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size!r}")


class Segmenter:
    """Lesion segmenter (model or baseline); build once per worker, reuse for every series.

    Attributes
    ----------
    kind : str
        ``model``, ``threshold`` or ``kmeans``.
    name, version : str
        Algorithm name and version written to the SEG and SR.
    min_lesion_volume_mm3 : float
        Components below this volume are removed.
    shape_limits : dict
        Components shaped outside these limits are removed (:mod:`pipeline.shape`); the
        model sidecar's ``shape_limits``, empty for the baselines and with ``shape_gate``
        False (the ``__init__`` argument).
    """

    def __init__(
        self, kind: str, engine: engines.Engine | None = None, batch_size: int = 8,
        shape_gate: bool = True,
    ) -> None:
        if kind not in ("model", "threshold", "kmeans"):
            raise ValueError(f"kind must be 'model', 'threshold' or 'kmeans', got {kind!r}")
        if (kind == "model") != (engine is not None):
            raise ValueError("an engine is required for kind 'model' and only for it")
        self.kind = kind
        self.engine = engine
        self.batch_size = batch_size
        self.params = BaselineParams()
        if engine is not None:
            spec_name = engine.spec.name
            self.name = spec_name if spec_name.startswith("lungseg") else f"lungseg {spec_name}"
            self.version = engine.spec.version
            self.min_lesion_volume_mm3 = engine.spec.min_lesion_volume_mm3
            self.shape_limits = dict(engine.spec.shape_limits) if shape_gate else {}
            if engine.spec.shape_limits and not shape_gate:
                self.version = f"{self.version}+no-shape-gate"
        else:
            label = "threshold" if kind == "threshold" else "k-means"
            self.name = f"lungseg {label} baseline"
            self.version = f"{kind}-{__version__}"
            self.min_lesion_volume_mm3 = self.params.min_volume_mm3
            self.shape_limits = {}

    @classmethod
    def create(cls, config: PipelineConfig) -> Segmenter:
        """Build the segmenter ``config`` asks for.

        Raises
        ------
        ConfigError
            If the model file does not exist (``segmenter`` ``auto`` or ``model``).
        EngineError
            If the engine cannot load the model.
        """
        if config.threads is not None:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(config.threads)
        if config.segmenter in ("threshold", "kmeans"):
            return cls(config.segmenter)
        path = Path(config.model_path) if config.model_path else engines.default_model_path()
        if not path.is_file():
            raise ConfigError(
                f"model file not found: {path} (segmenter={config.segmenter!r}); give a model "
                "file, or ask for a baseline by name (segmenter 'threshold' or 'kmeans')"
            )
        options = dict(config.engine_options)
        if config.threads:
            options.setdefault("threads", config.threads)
        try:
            engine = engines.create_engine(config.engine, path, **options)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EngineError(
                f"cannot load model {path} with engine {config.engine!r}: {exc}"
            ) from exc
        return cls("model", engine, config.batch_size, config.shape_gate)

    @property
    def algorithm(self) -> Algorithm:
        """Name and version for the output objects."""
        return Algorithm(self.name, self.version)

    def lungs(self, series: CTSeries) -> np.ndarray:
        """Return the boolean lung mask of ``series`` (native grid)."""
        return fast_lung_mask(series.hu, series.spacing)

    def segment(self, series: CTSeries, lungs: np.ndarray | None = None) -> np.ndarray:
        """Return the boolean ``(z, y, x)`` lesion mask of ``series`` on its native grid."""
        if lungs is None:
            lungs = self.lungs(series)
        if self.engine is not None:
            return segment_with_engine(
                series.hu, series.spacing, series.z_positions_mm, self.engine,
                self.batch_size, lungs,
            )
        segment = threshold_segment if self.kind == "threshold" else kmeans_segment
        return segment(series.hu, series.spacing, self.params, lungs)

    def close(self) -> None:
        """Release the engine (idempotent)."""
        if self.engine is not None:
            self.engine.close()


@dataclass
class SeriesResult:
    """Everything one run produced.

    ``seg`` is None when no lesion was found (the SR then reports zero lesions).
    """

    seg: pydicom.Dataset | None
    sr: pydicom.Dataset
    lesions: list[Lesion]
    mask: np.ndarray
    timings: dict[str, float]
    series: CTSeries | None = field(default=None, repr=False)
    algorithm: Algorithm | None = None


def process_series(
    sources: CTSeries | str | Path | Sequence[Source],
    segmenter: Segmenter,
    config: PipelineConfig,
) -> SeriesResult:
    """Run the whole pipeline on one series.

    Parameters
    ----------
    sources : CTSeries, folder path or sequence of paths/bytes/datasets
        The series.
    segmenter : Segmenter
    config : PipelineConfig

    Returns
    -------
    SeriesResult
        Output UIDs are deterministic from (source series, segmenter version).

    Raises
    ------
    SeriesRejected
        If the series cannot be loaded or has fewer than ``config.min_slices`` slices.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 4)
        clock = now

    series = _load(sources, config.threads)
    if series.hu.shape[0] < config.min_slices:
        raise SeriesRejected(f"{series.hu.shape[0]} slices, fewer than {config.min_slices}")
    lap("load")
    lungs = segmenter.lungs(series)
    lap("preprocess")
    mask = segmenter.segment(series, lungs)
    lap("inference")
    labels = label_lesions(mask, series.spacing, segmenter.min_lesion_volume_mm3,
                           shape_limits=segmenter.shape_limits)
    lap("postprocess")
    lesions = measure_lesions(labels, series.hu, series.spacing, series.index_to_patient)
    lap("measure")
    seg = write_seg(series, labels, segmenter.algorithm, config.seg_series_number)
    lap("write_seg")
    sr = write_sr(series, lesions, segmenter.algorithm, config.sr_series_number)
    lap("write_sr")
    timings["total"] = round(sum(timings.values()), 4)
    return SeriesResult(seg, sr, lesions, labels, timings, series, segmenter.algorithm)


def _load(sources: CTSeries | str | Path | Sequence[Source], threads: int | None) -> CTSeries:
    if isinstance(sources, CTSeries):
        return sources
    n = threads or 4
    if isinstance(sources, str | Path):
        return load_series_dir(sources, threads=n)
    return load_series(sources, threads=n)
