"""Factory, auto selection and error paths of the engines package."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from engines import KINDS, create_engine, default_model_path
from engines.detect import Probe, auto_order, cuda_device_count, module_available
from pipeline.errors import EngineError


def test_unknown_kind_is_rejected(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="'cuda-magic'"):
        create_engine("cuda-magic", tiny_model)


def test_missing_model_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="model file not found: .*absent.onnx"):
        create_engine("onnx", tmp_path / "absent.onnx")


def test_missing_sidecar_is_an_engine_error(tiny_model: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.onnx"
    shutil.copy(tiny_model, lone)
    with pytest.raises(EngineError, match="sidecar not found: .*lone.json"):
        create_engine("onnx", lone)


def test_default_model_absent_gives_a_hint(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setattr("lungseg_models.default_model_path",
                        lambda: tmp_path / "lungseg-unet.onnx")
    assert default_model_path() == tmp_path / "lungseg-unet.onnx"
    with pytest.raises(EngineError, match="trainer export"):
        create_engine("onnx")


def test_default_model_is_the_shipped_package_data() -> None:
    import lungseg_models

    path = default_model_path()
    assert path == lungseg_models.default_model_path()
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.parent.joinpath("README.md").is_file()  # the model card beside the files


@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_wrong_channel_count_is_rejected(tiny_model: Path, kind: str) -> None:
    with create_engine(kind, tiny_model, device="cpu") if kind == "torch" else \
            create_engine(kind, tiny_model) as engine:
        with pytest.raises(ValueError, match=r"\(n, 3, h, w\)"):
            engine.infer(np.zeros((1, 2, 32, 32), np.float32))
        with pytest.raises(ValueError, match="multiples of 16"):
            engine.infer(np.zeros((1, 3, 30, 32), np.float32))


def test_onnx_threads_validated(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        create_engine("onnx", tiny_model, threads=0)
    with pytest.raises(ValueError, match="optimization must be one of"):
        create_engine("onnx", tiny_model, optimization="max")
    engine = create_engine("onnx", tiny_model, threads=1)
    assert engine.threads == 1 and "1 threads" in engine.describe()


def test_infer_after_close_is_an_engine_error(tiny_model: Path) -> None:
    engine = create_engine("onnx", tiny_model)
    engine.close()
    with pytest.raises(EngineError, match="after close"):
        engine.infer(np.zeros((1, 3, 32, 32), np.float32))


def test_missing_torch_names_the_extra(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EngineError, match=r"pip install 'lungseg\[train\]'"):
        create_engine("torch", tiny_model)


def test_missing_tensorrt_names_the_extra(tiny_model: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineError, match=r"pip install 'lungseg\[tensorrt\]'"):
        create_engine("tensorrt", tiny_model)


def test_missing_pt2_is_an_engine_error(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    for suffix in (".onnx", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), tmp_path / f"m{suffix}")
    with pytest.raises(EngineError, match=r"m\.pt2"):
        create_engine("torch", tmp_path / "m.onnx", device="cpu")


def test_torch_rejects_bad_options(tiny_model: Path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="dtype must be one of"):
        create_engine("torch", tiny_model, dtype="int4")
    with pytest.raises(ValueError, match="device must be"):
        create_engine("torch", tiny_model, device="tpu")


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (Probe(tensorrt=True, torch=True, cuda_devices=1), ["tensorrt", "torch", "onnx"]),
        (Probe(tensorrt=False, torch=True, cuda_devices=2), ["torch", "onnx"]),
        (Probe(tensorrt=True, torch=True, cuda_devices=0), ["onnx"]),
        (Probe(tensorrt=False, torch=False, cuda_devices=1), ["onnx"]),
    ],
)
def test_auto_order(found: Probe, expected: list[str]) -> None:
    order = auto_order(found)
    assert [kind for kind, _ in order] == expected
    assert all(reason for _, reason in order)


def test_auto_on_this_machine_logs_why(tiny_model: Path, caplog: pytest.LogCaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engines.probe", lambda: Probe(tensorrt=False, torch=False,
                                                       cuda_devices=0))
    with caplog.at_level(logging.INFO, logger="engines"):
        engine = create_engine("auto", tiny_model, threads=1, dtype="bf16")
    assert engine.name == "onnx"
    assert "no CUDA device found" in caplog.text


def test_auto_falls_back_when_a_gpu_backend_fails(
    tiny_model: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engines.probe", lambda: Probe(tensorrt=True, torch=False,
                                                       cuda_devices=1))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with caplog.at_level(logging.INFO, logger="engines"):
        engine = create_engine("auto", tiny_model)
    assert engine.name == "onnx"
    assert "tensorrt unusable" in caplog.text and "lungseg[tensorrt]" in caplog.text


def test_probes_run_without_importing() -> None:
    assert module_available("numpy") and not module_available("no_such_module_here")
    assert cuda_device_count() >= 0
    assert set(KINDS) == {"auto", "onnx", "torch", "tensorrt"}


def test_option_the_backend_does_not_accept_is_named(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match=r"no option\(s\) \['dtype'\].*threads"):
        create_engine("onnx", tiny_model, dtype="fp16")
