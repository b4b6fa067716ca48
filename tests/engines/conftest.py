"""Fixtures for engine tests: a tiny real model exported like ``trainer export`` does, and
real CT slices prepared with the shared preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.spec import ModelSpec, write_spec

REPO = Path(__file__).resolve().parents[2]
SHARED_0001 = REPO.parent / "shared" / "data" / "lidc-series" / "LIDC-IDRI-0001"
DEMO_0001 = REPO / "demo" / "LIDC-IDRI-0001"
TINY_SPEC = ModelSpec(
    name="tiny-test-net", version="0.0.1", architecture="2-level conv net (tests only)",
    slice_offsets_mm=(-2.5, 0.0, 2.5), pixel_spacing_mm=2.0, hu_window=(-1000.0, 400.0),
    size_multiple=16, threshold=0.5, min_lesion_volume_mm3=10.0,
)


def build_tiny_model(folder: Path, spec: ModelSpec = TINY_SPEC, seed: int = 0) -> Path:
    """Export a small conv net with a sigmoid head as ``.onnx`` (opset 17, dynamic batch and
    h/w), ``.pt2`` (torch.export) and the sidecar ``.json``; return the ``.onnx`` path."""
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(seed)
    c = spec.in_channels
    net = nn.Sequential(
        nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 2, stride=2), nn.ReLU(),
        nn.Conv2d(8, 1, 1), nn.Sigmoid(),
    ).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    dim = torch.export.Dim.DYNAMIC
    example = torch.rand(2, c, 32, 48)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: dim, 2: dim, 3: dim},))
    onnx_path = folder / f"{spec.name}.onnx"
    torch.export.save(program, str(onnx_path.with_suffix(".pt2")))
    torch.onnx.export(
        program, (example,), str(onnx_path), input_names=["image"],
        output_names=["probability"], opset_version=17, dynamo=True, external_data=False,
    )
    write_spec(spec, onnx_path)
    return onnx_path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the tiny exported model (``.onnx`` with ``.pt2`` and ``.json`` beside it)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def ct_series_dir() -> Path:
    """Real CT series used by the tests: the shipped demo series, else the shared one."""
    if DEMO_0001.is_dir() and any(DEMO_0001.glob("*.dcm")):
        return DEMO_0001
    matches = sorted({p.parent for p in SHARED_0001.rglob("*.dcm")})
    if not matches:
        pytest.skip(f"no real CT series: neither {DEMO_0001} nor {SHARED_0001} has DICOM files")
    return matches[0]


@pytest.fixture(scope="session")
def ct_series():
    """The real CT series loaded with ``pipeline.series.load_series_dir``."""
    from pipeline.series import load_series_dir

    return load_series_dir(ct_series_dir())


def prepared_batch(series, spec: ModelSpec, slices: slice) -> np.ndarray:
    """Model input for ``slices`` of the series (lung bounding box, shared preprocessing)."""
    from pipeline.preprocess import bounding_box, lung_mask, prepare_slices

    lungs = lung_mask(series.hu, series.spacing)
    box = bounding_box(lungs)
    roi = (slices, box[1], box[2])
    return prepare_slices(series.hu, series.spacing, series.z_positions_mm, spec, roi).batch


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    """The sidecar of :func:`tiny_model`."""
    return TINY_SPEC


@pytest.fixture(scope="session")
def prepare_ct():
    """:func:`prepared_batch` (fixtures cannot be imported under ``--import-mode=importlib``)."""
    return prepared_batch


@pytest.fixture(scope="session")
def ct_batch(ct_series, tiny_spec, prepare_ct) -> np.ndarray:
    """Eight real CT slices through the middle of the series, lung-cropped."""
    mid = ct_series.hu.shape[0] // 2
    return prepare_ct(ct_series, tiny_spec, slice(mid - 4, mid + 4))
