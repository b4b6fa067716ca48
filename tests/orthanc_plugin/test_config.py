import json

import pytest

from orthanc_plugin.config import from_orthanc_configuration, from_section
from pipeline.errors import ConfigError

BASE = {
    "WorkerPython": "/opt/venv/bin/python", "DataDir": "/var/lib/lungseg",
    "Url": "http://127.0.0.1:8042", "WorkerUser": "worker", "WorkerPassword": "secret",
}


def test_minimal_section_gets_defaults():
    cfg = from_section(BASE)
    assert cfg.segmenter == "auto" and cfg.engine == "onnx" and cfg.min_slices == 10
    assert cfg.model_path is None and cfg.threads is None
    assert str(cfg.job_db) == "/var/lib/lungseg/lungseg-jobs.sqlite"
    assert "secret" not in repr(cfg)


def test_round_trip_through_worker_json():
    cfg = from_section({**BASE, "SitePackages": ["/a"], "MinSlices": 20, "Threads": 2,
                        "WorkerMemoryLimitMB": 4096, "MaxAttempts": 2})
    assert from_section(json.loads(cfg.to_json())) == cfg


def test_retry_and_worker_limits():
    cfg = from_section(BASE)
    assert (cfg.max_attempts, cfg.retry_delay_s, cfg.worker_max_starts) == (3, 10.0, 5)
    assert cfg.worker_memory_limit_mb is None
    policy = from_section({**BASE, "MaxAttempts": 4, "RetryDelaySeconds": 1.5}).retry_policy
    assert (policy.max_attempts, [policy.delay(n) for n in (1, 2, 3)]) == (4, [1.5, 3.0, 6.0])


@pytest.mark.parametrize("key", ["WorkerPython", "DataDir", "Url", "WorkerUser", "WorkerPassword"])
def test_missing_required_key_is_named(key):
    section = {k: v for k, v in BASE.items() if k != key}
    with pytest.raises(ConfigError, match=f"LungSeg.{key}"):
        from_section(section)


@pytest.mark.parametrize("key, value", [
    ("MinSlices", "10"), ("MinSlices", 1), ("MinSlices", True), ("Segmenter", "magic"),
    ("Url", "ftp://x"), ("Threads", 0), ("PollIntervalSeconds", -1), ("SitePackages", "/a"),
    ("WorkerPython", "python3"), ("DataDir", "rel/dir"), ("ScanOnStart", 1),
    ("ShapeGate", "false"), ("MaxAttempts", 0), ("RetryDelaySeconds", -1),
    ("WorkerMaxStarts", 0), ("WorkerMemoryLimitMB", 100), ("WorkerMemoryLimitMB", "2G"),
])
def test_bad_value_is_named(key, value):
    with pytest.raises(ConfigError, match=f"LungSeg.{key}"):
        from_section({**BASE, key: value})


def test_password_never_shown_in_errors():
    with pytest.raises(ConfigError) as err:
        from_section({**BASE, "WorkerPassword": ""})
    assert "LungSeg.WorkerPassword" in str(err.value)


def test_unknown_key_rejected():
    with pytest.raises(ConfigError, match="LungSeg.MinSlice"):
        from_section({**BASE, "MinSlice": 3})


def test_whole_configuration():
    cfg = from_orthanc_configuration(json.dumps({"HttpPort": 1, "LungSeg": BASE}))
    assert cfg.url == BASE["Url"]
    with pytest.raises(ConfigError, match="missing configuration section LungSeg"):
        from_orthanc_configuration("{}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_orthanc_configuration("{")


def test_engine_options_reach_the_pipeline_config():
    from orthanc_plugin.worker import pipeline_config

    cfg = from_section({**BASE, "Engine": "torch",
                        "EngineOptions": {"dtype": "fp16", "device": "cuda"}})
    assert cfg.engine_options == (("device", "cuda"), ("dtype", "fp16"))
    assert from_section(json.loads(cfg.to_json())) == cfg
    assert dict(pipeline_config(cfg).engine_options) == {"device": "cuda", "dtype": "fp16"}
    with pytest.raises(ConfigError, match="LungSeg.EngineOptions"):
        from_section({**BASE, "EngineOptions": ["dtype=fp16"]})


def test_shape_gate_reaches_the_pipeline_config():
    from orthanc_plugin.worker import pipeline_config

    assert from_section(BASE).shape_gate is True
    cfg = from_section({**BASE, "ShapeGate": False})
    assert from_section(json.loads(cfg.to_json())) == cfg
    assert pipeline_config(cfg).shape_gate is False
