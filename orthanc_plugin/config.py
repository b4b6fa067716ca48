"""The plugin's configuration: the ``LungSeg`` section of Orthanc's JSON configuration.

Every key is checked once, at Orthanc start-up; an error names the full key path
(for example ``LungSeg.WorkerPython``) so that a bad configuration fails fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orthanc_plugin.jobstore import RetryPolicy
from pipeline.errors import ConfigError

SECTION = "LungSeg"
SEGMENTERS = ("auto", "model", "threshold", "kmeans")


@dataclass(frozen=True)
class PluginConfig:
    """Settings of the plugin and of its worker process.

    Attributes mirror the JSON keys of the ``LungSeg`` section (CamelCase there).
    """

    worker_python: str
    data_dir: str
    url: str
    worker_user: str
    worker_password: str = field(repr=False)
    site_packages: tuple[str, ...] = ()
    segmenter: str = "auto"
    engine: str = "onnx"
    model_path: str | None = None
    threads: int | None = None
    engine_options: tuple[tuple[str, Any], ...] = ()
    min_slices: int = 10
    shape_gate: bool = True
    seg_series_number: int = 9901
    sr_series_number: int = 9902
    poll_interval_s: float = 0.05
    scan_on_start: bool = True
    worker_restart_delay_s: float = 2.0
    worker_max_starts: int = 5
    worker_memory_limit_mb: int | None = None
    max_attempts: int = 3
    retry_delay_s: float = 10.0
    storage_dir: str | None = None
    registry: str | None = None

    @property
    def job_db(self) -> Path:
        """Path of the sqlite job store inside :attr:`data_dir`."""
        return Path(self.data_dir) / "lungseg-jobs.sqlite"

    @property
    def retry_policy(self) -> RetryPolicy:
        """How jobs whose attempt broke off are retried (``MaxAttempts``, ``RetryDelaySeconds``)."""
        return RetryPolicy(self.max_attempts, float(self.retry_delay_s))

    @property
    def registry_dir(self) -> Path:
        """Model registry (:mod:`pipeline.registry`); default ``<data_dir>/model-registry``."""
        from pipeline.registry import DEFAULT_NAME

        return Path(self.registry) if self.registry else Path(self.data_dir) / DEFAULT_NAME

    def to_json(self) -> str:
        """Serialise to the JSON form the worker process reads back with :func:`from_section`."""
        data = asdict(self)
        data["engine_options"] = dict(self.engine_options)
        return json.dumps({_KEYS_BY_FIELD[k]: v for k, v in data.items()})


# field name -> (JSON key, expected type(s), required)
_SPEC: dict[str, tuple[str, tuple[type, ...], bool]] = {
    "worker_python": ("WorkerPython", (str,), True),
    "data_dir": ("DataDir", (str,), True),
    "url": ("Url", (str,), True),
    "worker_user": ("WorkerUser", (str,), True),
    "worker_password": ("WorkerPassword", (str,), True),
    "site_packages": ("SitePackages", (list, tuple), False),
    "segmenter": ("Segmenter", (str,), False),
    "engine": ("Engine", (str,), False),
    "model_path": ("ModelPath", (str, type(None)), False),
    "threads": ("Threads", (int, type(None)), False),
    "engine_options": ("EngineOptions", (dict,), False),
    "min_slices": ("MinSlices", (int,), False),
    "shape_gate": ("ShapeGate", (bool,), False),
    "seg_series_number": ("SegSeriesNumber", (int,), False),
    "sr_series_number": ("SrSeriesNumber", (int,), False),
    "poll_interval_s": ("PollIntervalSeconds", (int, float), False),
    "scan_on_start": ("ScanOnStart", (bool,), False),
    "worker_restart_delay_s": ("WorkerRestartDelaySeconds", (int, float), False),
    "worker_max_starts": ("WorkerMaxStarts", (int,), False),
    "worker_memory_limit_mb": ("WorkerMemoryLimitMB", (int, type(None)), False),
    "max_attempts": ("MaxAttempts", (int,), False),
    "retry_delay_s": ("RetryDelaySeconds", (int, float), False),
    "storage_dir": ("StorageDirectory", (str, type(None)), False),
    "registry": ("Registry", (str, type(None)), False),
}
_KEYS_BY_FIELD = {name: spec[0] for name, spec in _SPEC.items()}


def _checked(section: Mapping[str, Any], name: str) -> Any:
    key, types, required = _SPEC[name]
    path = f"{SECTION}.{key}"
    if key not in section:
        if required:
            raise ConfigError(f"missing configuration key {path}")
        return None
    value = section[key]
    # bool is an int subclass: never accept it where a number is meant
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{path} must be {_type_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{path} must be {_type_names(types)}, got {value!r}")
    return value


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", tuple: "a list", dict: "an object", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _validate(cfg: PluginConfig) -> None:
    checks = [
        (cfg.segmenter in SEGMENTERS, "Segmenter", f"one of {SEGMENTERS}"),
        (cfg.url.startswith(("http://", "https://")), "Url", "an http(s) URL"),
        (bool(cfg.worker_user), "WorkerUser", "a non-empty string"),
        (bool(cfg.worker_password), "WorkerPassword", "a non-empty string"),
        (cfg.threads is None or cfg.threads >= 1, "Threads", "null or >= 1"),
        (cfg.min_slices >= 2, "MinSlices", ">= 2"),
        (cfg.poll_interval_s > 0, "PollIntervalSeconds", "> 0"),
        (cfg.worker_restart_delay_s >= 0, "WorkerRestartDelaySeconds", ">= 0"),
        (cfg.worker_max_starts >= 1, "WorkerMaxStarts", ">= 1"),
        (cfg.worker_memory_limit_mb is None or cfg.worker_memory_limit_mb >= 256,
         "WorkerMemoryLimitMB", "null or >= 256"),
        (cfg.max_attempts >= 1, "MaxAttempts", ">= 1"),
        (cfg.retry_delay_s >= 0, "RetryDelaySeconds", ">= 0"),
        (all(isinstance(p, str) for p in cfg.site_packages), "SitePackages", "a list of paths"),
        (Path(cfg.worker_python).is_absolute(), "WorkerPython", "an absolute path"),
        (Path(cfg.data_dir).is_absolute(), "DataDir", "an absolute path"),
        (cfg.registry is None or Path(cfg.registry).is_absolute(), "Registry",
         "null or an absolute path"),
    ]
    for ok, key, expected in checks:
        if not ok:
            value = getattr(cfg, _FIELD_BY_KEY[key])
            shown = "***" if key == "WorkerPassword" else repr(value)
            raise ConfigError(f"{SECTION}.{key} must be {expected}, got {shown}")


_FIELD_BY_KEY = {key: name for name, key in _KEYS_BY_FIELD.items()}


def from_section(section: Mapping[str, Any]) -> PluginConfig:
    """Build the configuration from the ``LungSeg`` section.

    Parameters
    ----------
    section : Mapping
        The ``LungSeg`` object of Orthanc's configuration.

    Returns
    -------
    PluginConfig

    Raises
    ------
    ConfigError
        If a required key is missing, a key is unknown, or a value has the wrong type or range;
        the message names the key path.
    """
    if not isinstance(section, Mapping):
        raise ConfigError(f"{SECTION} must be a JSON object, got {type(section).__name__}")
    unknown = sorted(set(section) - set(_FIELD_BY_KEY))
    if unknown:
        raise ConfigError(f"unknown configuration key(s) {[f'{SECTION}.{k}' for k in unknown]}")
    values = {name: _checked(section, name) for name in _SPEC}
    nullable = ("model_path", "threads", "worker_memory_limit_mb", "storage_dir", "registry")
    values = {k: v for k, v in values.items() if v is not None or k in nullable}
    if "site_packages" in values:
        values["site_packages"] = tuple(values["site_packages"])
    if "engine_options" in values:
        values["engine_options"] = tuple(sorted(values["engine_options"].items()))
    cfg = PluginConfig(**values)
    _validate(cfg)
    return cfg


def from_orthanc_configuration(text: str | bytes) -> PluginConfig:
    """Build the configuration from Orthanc's whole configuration (``orthanc.GetConfiguration()``).

    Raises
    ------
    ConfigError
        If the text is not JSON, the section is missing, or :func:`from_section` rejects it.
    """
    try:
        full = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Orthanc configuration is not valid JSON: {exc}") from exc
    if not isinstance(full, dict) or SECTION not in full:
        raise ConfigError(f"missing configuration section {SECTION}")
    return from_section(full[SECTION])
