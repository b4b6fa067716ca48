"""``trainer retrain --config site.yaml``: pull -> fine-tune -> compare -> promote if not worse.

``site.yaml`` (keys; paths relative to the file's folder)::

    archive:                       # trainer pull
      url: http://127.0.0.1:8042/dicom-web
      user: lungseg
      password_env: LUNGSEG_PULL_PASSWORD   # or password: ...
      site: SITE
    checkpoint: runs/default/final.pt        # trainable fine-tuned U-Net to start from
    current_model: null            # exported .onnx in use; default: the registry's active
                                   #   version, else the shipped model
    registry: null                 # default $LUNGSEG_REGISTRY / <data dir>/model-registry
    work_dir: runs/retrain
    heldout_fraction: 0.3          # site patients kept out of training, for compare
    seed: 0                        # the held-out draw
    steps: 200                     # fine-tuning optimizer steps
    site_weight: 1                 # times each site series enters the crops
    public_list: null              # series list of public series trained on as well
    train_overrides: {}            # other training keys (e.g. lr) over the checkpoint's
    boot: 2000                     # bootstrap draws of compare
    threads: 2

Steps, in ``<work_dir>/<run id>/``: pull into ``<work_dir>/pull`` (kept between runs); split
the site's patients by seed into held-out and training (recorded in the report); cut crops
from the training series (each ``site_weight`` times) plus ``public_list``; build the patch
cache with the training series as ``negative_list``; fine-tune ``steps`` from every weight of
``checkpoint``; export; compare with the current model on the held-out series; register the
new model; promote it when compare says not worse. ``report.json`` and ``report.md`` record
it all. The active pointer is only ever touched by that last promotion, so a failed or
interrupted run leaves the active model as it was.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("lungseg.retrain")
KEYS = {"archive", "checkpoint", "current_model", "registry", "work_dir", "heldout_fraction",
        "seed", "steps", "site_weight", "public_list", "train_overrides", "boot", "threads"}
DEFAULTS: dict[str, Any] = {"current_model": None, "registry": None, "work_dir": "runs/retrain",
                            "heldout_fraction": 0.3, "seed": 0, "steps": 200, "site_weight": 1,
                            "public_list": None, "train_overrides": {}, "boot": 2000,
                            "threads": 2}


def load_site_config(path: str | Path) -> dict:
    """Read ``site.yaml`` (see the module docstring); relative paths become absolute.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On unknown or missing keys, or values out of range.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"site config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of keys")
    unknown = set(data) - KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    cfg = {**DEFAULTS, **data}
    for key in ("archive", "checkpoint"):
        if not cfg.get(key):
            raise ValueError(f"{path}: {key!r} is required")
    if not isinstance(cfg["archive"], dict) or "url" not in cfg["archive"]:
        raise ValueError(f"{path}: archive needs a url")
    if not 0.0 < float(cfg["heldout_fraction"]) < 1.0:
        raise ValueError(f"{path}: heldout_fraction must be in (0, 1)")
    if int(cfg["site_weight"]) < 1 or int(cfg["steps"]) < 1:
        raise ValueError(f"{path}: site_weight and steps must be >= 1")
    for key in ("checkpoint", "current_model", "registry", "work_dir", "public_list"):
        if cfg[key]:
            cfg[key] = str((path.parent / cfg[key]).resolve())
    return cfg


def split_patients(patients: list[str], fraction: float, seed: int) -> tuple[list[str],
                                                                            list[str]]:
    """Draw the held-out patients (at least one, leaving at least one); return (train, held).

    Raises
    ------
    ValueError
        With fewer than two patients.
    """
    unique = sorted(set(patients))
    if len(unique) < 2:
        raise ValueError(f"need series of at least 2 site patients to hold one out, got "
                         f"{len(unique)}")
    n_held = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    order = np.random.default_rng(seed).permutation(len(unique))
    held = sorted(unique[i] for i in order[:n_held])
    return [p for p in unique if p not in held], held


def _write_list(entries: list, path: Path) -> Path:
    rows = []
    for e in entries:
        row: dict[str, Any] = {"series": str(e.series), "patient": e.patient}
        if e.lesions is None:
            row["lesion_free"] = True
        else:
            row["lesions"] = str(e.lesions)
        rows.append(row)
    path.write_text(json.dumps(rows, indent=1))
    return path


def _pull(cfg: dict, work: Path) -> dict:
    from trainer.retrain.pull import connect, pull

    archive = cfg["archive"]
    password = archive.get("password") or os.environ.get(
        archive.get("password_env", "LUNGSEG_PULL_PASSWORD"))
    user = archive.get("user")
    client = connect(archive["url"], user, password if user else None)
    return pull(client, work / "pull", archive["url"], archive.get("since"),
                archive.get("site", "SITE"))


def _finetune(cfg: dict, run: Path, train_list: Path, crops: Path, version: str) -> Path:
    from trainer.config import config_from_saved
    from trainer.data.cache import build_cache
    from trainer.train.checkpoint import load_checkpoint
    from trainer.train.loop import finetune

    saved = load_checkpoint(cfg["checkpoint"])
    tcfg = config_from_saved({**saved["config"], **cfg["train_overrides"],
                              "vois_dir": str(crops), "cache": str(run / "cache.npz"),
                              "out_dir": str(run / "finetune"), "negative_list": str(train_list),
                              "steps": int(cfg["steps"]), "init": str(cfg["checkpoint"]),
                              "model_version": version})
    build_cache(tcfg)
    return finetune(tcfg, init_weights=lambda model, state: model.load_state_dict(state))


def _current_model(cfg: dict, registry: Path) -> tuple[str, str | None]:
    from engines import default_model_path
    from pipeline import registry as reg

    active = reg.active_version(registry)
    if cfg["current_model"]:
        return cfg["current_model"], active
    if active:
        return str(reg.model_path(registry, active)), active
    return str(default_model_path()), None


def retrain(config_path: str | Path) -> dict:
    """Run the whole loop (module docstring); return the report (also written to disk).

    Raises
    ------
    ValueError, FileNotFoundError
        On a bad config, a pull with too few patients, or from any step; the report then
        records the failure and the active model is unchanged.
    """
    from pipeline.registry import registry_dir

    cfg = load_site_config(config_path)
    registry = Path(cfg["registry"]) if cfg["registry"] else registry_dir()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    run = Path(cfg["work_dir"]) / run_id
    run.mkdir(parents=True)
    report: dict[str, Any] = {"run": run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "config": str(Path(config_path).resolve()),
                              "registry": str(registry), "status": "running"}
    try:
        _steps(cfg, registry, run, report)
        report["status"] = "done"
    except BaseException as exc:
        report.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_report(run, report)
    return report


def _steps(cfg: dict, registry: Path, run: Path, report: dict) -> None:
    from trainer.data.crops import write_crops
    from trainer.data.series_list import read_series_list
    from trainer.evaluation.compare import compare_models
    from trainer.export.exporter import export_checkpoint
    from trainer.retrain.registry_ops import promote, register

    manifest = _pull(cfg, Path(cfg["work_dir"]))
    report["pull"] = {"series": len(manifest["entries"]), "source": manifest["source"],
                      "lesion_free": sum(e["lesion_free"] for e in manifest["entries"])}
    if not manifest["series_list"]:
        raise ValueError("the pull found no corrected series: nothing to train on")
    entries = read_series_list(manifest["series_list"])
    train, held = split_patients([e.patient for e in entries], float(cfg["heldout_fraction"]),
                                 int(cfg["seed"]))
    report["split"] = {"seed": cfg["seed"], "heldout_fraction": cfg["heldout_fraction"],
                       "train_patients": train, "heldout_patients": held}
    train_list = _write_list([e for e in entries if e.patient in train], run / "train-list.json")
    held_list = _write_list([e for e in entries if e.patient in held], run / "heldout-list.json")
    site = read_series_list(train_list)
    public = read_series_list(cfg["public_list"]) if cfg["public_list"] else []
    report["crops"] = write_crops(site * int(cfg["site_weight"]) + public, run / "crops")
    old_model, active = _current_model(cfg, registry)
    version = f"{_base_version(old_model)}+site.{report['run']}"
    checkpoint = _finetune(cfg, run, train_list, run / "crops", version)
    new_model = run / "export" / "lungseg-unet.onnx"
    _, parity = export_checkpoint([checkpoint], new_model,
                                  {"retrain": {k: report[k] for k in ("split", "pull")}},
                                  False, version)
    report["export"] = {"model": str(new_model), "version": version, "parity": parity}
    comparison = compare_models(old_model, str(new_model), read_series_list(held_list),
                                int(cfg["threads"]), int(cfg["boot"]), int(cfg["seed"]))
    comparison["series_list"] = str(held_list)
    (run / "compare-report.json").write_text(json.dumps(comparison, indent=1))
    report["compare"] = {k: comparison[k] for k in ("figures", "intervals", "verdict",
                                                    "reasons", "bootstrap", "models")}
    if active is None:
        _register_baseline(old_model, registry, report)
    register(new_model, registry, run / "compare-report.json",
             f"Fine-tuned {cfg['steps']} steps from {cfg['checkpoint']} on the series of "
             f"{len(train)} site patients (run {report['run']}).")
    report["registered"] = version
    try:
        promote(registry, version)
        report["promoted"] = True
    except ValueError as exc:
        report.update(promoted=False, refused=str(exc))
    LOG.info("retrain %s: NEW is %s; %s", report["run"], comparison["verdict"],
             "promoted" if report["promoted"] else "not promoted")


def _base_version(model: str) -> str:
    from engines.spec import read_spec

    return read_spec(model).version.split("+site.")[0]


def _register_baseline(model: str, registry: Path, report: dict) -> None:
    from engines.spec import read_spec
    from pipeline import registry as reg
    from trainer.retrain.registry_ops import promote, register

    version = read_spec(model).version
    if version not in reg.versions(registry):
        register(model, registry, notes="The model in use before the first retrain.")
    promote(registry, version, force=True,
            reason="baseline: the model in use before the first retrain")
    report["baseline"] = version


def write_report(run: Path, report: dict) -> None:
    """Write ``report.json`` and a short ``report.md`` into the run folder."""
    (run / "report.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"# Retrain {report['run']}: {report['status']}", ""]
    if "error" in report:
        lines.append(f"Failed: {report['error']}. The active model is unchanged.")
    if "pull" in report:
        lines.append(f"- pulled {report['pull']['series']} corrected series "
                     f"({report['pull']['lesion_free']} lesion-free) from "
                     f"{report['pull']['source']}")
    if "split" in report:
        s = report["split"]
        lines.append(f"- held out (seed {s['seed']}): {', '.join(s['heldout_patients'])}; "
                     f"trained on: {', '.join(s['train_patients'])}")
    if "compare" in report:
        c = report["compare"]
        for k in ("old", "new"):
            f = c["figures"][k]
            lines.append(f"- {k} ({c['models'][k]}): lesions found "
                         f"{f['lesion_sensitivity']:.3f}, FP/scan "
                         f"{f['false_positives_per_scan']:.2f}, per-lesion Dice "
                         f"{f['mean_lesion_dice']:.3f}")
        lines.append(f"- verdict: NEW is {c['verdict']} ({'; '.join(c['reasons'])})")
    if "promoted" in report:
        lines.append(f"- {report['registered']}: " + (
            "promoted (active)" if report["promoted"] else f"not promoted: {report['refused']}"))
    (run / "report.md").write_text("\n".join(lines) + "\n")
