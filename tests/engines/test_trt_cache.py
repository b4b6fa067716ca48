"""TensorRT engine cache: keys, file names and stale-engine detection (no TensorRT needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.trt_cache import (
    CACHE_ENV,
    Profile,
    cache_key,
    default_cache_dir,
    engine_file,
    file_sha256,
    stale_engines,
)

BASE = {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
        "trt_version": "10.3.0", "model_sha256": "ab" * 32, "fp16": True}


def _key(**changes: object) -> str:
    args = {**BASE, "profile": Profile(channels=3), **changes}
    return cache_key(**args)


def test_key_is_deterministic_and_short() -> None:
    assert _key() == _key()
    assert len(_key()) == 32 and int(_key(), 16) >= 0


@pytest.mark.parametrize("change", [
    {"gpu_name": "NVIDIA H200"}, {"compute_capability": "8.9"}, {"trt_version": "10.4.0"},
    {"model_sha256": "cd" * 32}, {"fp16": False}, {"profile": Profile(channels=3, max_batch=128)},
    {"profile": Profile(channels=5)},
])
def test_every_component_changes_the_key(change: dict) -> None:
    assert _key(**change) != _key()


def test_key_rejects_empty_strings() -> None:
    with pytest.raises(ValueError, match="trt_version must be a non-empty string"):
        _key(trt_version="")


def test_model_hash_follows_content(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    first = file_sha256(model)
    model.write_bytes(b"two")
    assert file_sha256(model) != first
    assert len(first) == 64


def test_stale_engines_are_other_keys_of_the_same_model(tmp_path: Path) -> None:
    old, new, other = _key(trt_version="9.0"), _key(), _key(gpu_name="A100")
    for key in (old, new):
        engine_file(tmp_path, "lungseg-unet", key).write_bytes(b"x")
    engine_file(tmp_path, "lungseg-unet-int8", other).write_bytes(b"x")
    assert stale_engines(tmp_path, "lungseg-unet", new) == [
        engine_file(tmp_path, "lungseg-unet", old)
    ]
    assert stale_engines(tmp_path / "missing", "lungseg-unet", new) == []


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parts[-2:] == ("lungseg", "tensorrt")


def test_profile_shapes_and_validation() -> None:
    profile = Profile(channels=3, min_batch=1, opt_batch=8, max_batch=16,
                      min_hw=16, opt_hw=128, max_hw=256)
    assert profile.shapes() == ((1, 3, 16, 16), (8, 3, 128, 128), (16, 3, 256, 256))
    assert profile.accepts((16, 3, 256, 16)) and not profile.accepts((17, 3, 64, 64))
    assert not profile.accepts((1, 3, 512, 64)) and not profile.accepts((1, 2, 64, 64))
    with pytest.raises(ValueError, match="batch must satisfy"):
        Profile(channels=3, opt_batch=128, max_batch=64)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        Profile(channels=0)
