"""The onnx engine's ``precision`` option: which file runs (fp32 model or its int8 sibling)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engines import create_engine
from engines.onnx_engine import select_model_file
from engines.quantize import int8_path, quantize_int8
from engines.spec import sidecar_path
from pipeline.errors import EngineError


@pytest.fixture()
def model_pair(tiny_model: Path, ct_batch: np.ndarray, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the tiny fp32 model with its int8 sibling quantised from it."""
    fp32 = tmp_path / tiny_model.name
    for path in (tiny_model, sidecar_path(tiny_model)):
        shutil.copy2(path, tmp_path / path.name)
    return fp32, quantize_int8(fp32, [ct_batch[:4]])


def test_auto_runs_the_matching_int8_sibling(model_pair: tuple[Path, Path]) -> None:
    fp32, int8 = model_pair
    assert int8 == int8_path(fp32)
    assert select_model_file(fp32) == int8
    assert select_model_file(fp32, "int8") == int8
    assert select_model_file(fp32, "fp32") == fp32
    assert select_model_file(int8) == int8
    with create_engine("onnx", fp32) as auto, create_engine("onnx", fp32, precision="fp32") as full:
        assert auto.precision == "int8" and "int8" in auto.describe()
        assert full.precision == "fp32" and full.model_path == fp32


def test_a_stale_sibling_is_not_used(model_pair: tuple[Path, Path]) -> None:
    fp32, int8 = model_pair
    fp32.write_bytes(fp32.read_bytes() + b" ")  # the fp32 model changed after quantisation
    assert select_model_file(fp32) == fp32
    with pytest.raises(EngineError, match="not quantised from this"):
        select_model_file(fp32, "int8")


def test_missing_sibling_and_bad_values_are_named(tiny_model: Path, model_pair) -> None:
    assert select_model_file(tiny_model) == tiny_model
    with pytest.raises(EngineError, match="no int8 model"):
        select_model_file(tiny_model, "int8")
    with pytest.raises(EngineError, match="is an int8 model"):
        select_model_file(model_pair[1], "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        select_model_file(tiny_model, "fp16")
