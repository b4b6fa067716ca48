"""Register, promote and roll back models in the registry (:mod:`pipeline.registry`).

- **register**: copy an exported model (``.onnx``, its sidecar, its int8 sibling if any) into
  ``<registry>/<version>/`` with a model card and the compare report; the version is the
  sidecar's (it enters every output UID, so the SEG/SR name the registry version).
- **promote**: activate a registered version only when its compare report's verdict is
  ``better`` or ``not worse`` (:mod:`trainer.evaluation.compare`), or with ``force`` and a
  reason (recorded in the history). A model the ONNX engine cannot load is never activated,
  forced or not.
- **rollback**: re-activate the version that was active before the current one (the
  promotions not yet rolled back form a stack in the history).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engines.quantize import int8_path
from engines.spec import read_spec, sidecar_path
from pipeline import registry as reg
from trainer.evaluation.compare import ADMITS

REPORT_FILE = "compare-report.json"
CARD_FILE = "MODEL_CARD.md"


class PromotionRefused(ValueError):
    """Raised when a version may not become active; the message says why."""


def register(model: str | Path, registry: str | Path, report: str | Path | None = None,
             notes: str = "") -> str:
    """Copy an exported model into the registry; return its version.

    Raises
    ------
    FileNotFoundError
        If the model, its sidecar or the report does not exist.
    ValueError
        If the version is already registered or cannot name a folder.
    """
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"model {model} does not exist")
    spec = read_spec(model)
    version = reg.check_version(spec.version)
    root = Path(registry)
    target = root / version
    if target.exists():
        raise ValueError(f"version {version} is already registered in {root}; export the new "
                         "model with another --model-version")
    partial = root / f".{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    dest = partial / reg.MODEL_FILE
    shutil.copy2(model, dest)
    shutil.copy2(sidecar_path(model), sidecar_path(dest))
    if int8_path(model).is_file() and sidecar_path(int8_path(model)).is_file():
        shutil.copy2(int8_path(model), int8_path(dest))
        shutil.copy2(sidecar_path(int8_path(model)), sidecar_path(int8_path(dest)))
    compare = None
    if report is not None:
        compare = json.loads(Path(report).read_text())
        shutil.copy2(report, partial / REPORT_FILE)
    (partial / CARD_FILE).write_text(model_card(spec, compare, notes))
    partial.rename(target)
    return version


def model_card(spec, compare: dict | None, notes: str) -> str:
    """Short Markdown model card: version, input contract, the comparison that admitted it."""
    lines = [f"# lungseg model {spec.version}", "", f"- name: {spec.name}",
             f"- input: {spec.in_channels} slices at offsets {list(spec.slice_offsets_mm)} mm, "
             f"{spec.pixel_spacing_mm} mm pixels, HU window {list(spec.hu_window)}",
             f"- threshold {spec.threshold}, minimum lesion volume "
             f"{spec.min_lesion_volume_mm3} mm3", "- research use only"]
    if compare:
        lines += ["", "## Admission", "", f"Compared with {compare['models']['old']} on "
                  f"{compare['bootstrap']['n_series']} held-out series of "
                  f"{compare['bootstrap']['n_patients']} patients: NEW is "
                  f"**{compare['verdict']}** ({'; '.join(compare['reasons'])})."]
        for k in ("old", "new"):
            fig = compare["figures"][k]
            lines.append(f"- {k}: lesions found {fig['lesion_sensitivity']:.3f}, false "
                         f"positives per scan {fig['false_positives_per_scan']:.2f}, "
                         f"per-lesion Dice {fig['mean_lesion_dice']:.3f}")
    if notes:
        lines += ["", "## Training", "", notes]
    return "\n".join(lines) + "\n"


def check_loads(path: str | Path) -> str:
    """Open ``path`` with the ONNX engine as the worker would; return its description.

    Raises
    ------
    PromotionRefused
        If the engine cannot load it.
    """
    from engines import create_engine

    try:
        with create_engine("onnx", path, threads=1) as engine:
            return engine.describe()
    except Exception as exc:  # any failure to load means: never activate it
        raise PromotionRefused(f"model {path} does not load: {type(exc).__name__}: "
                               f"{exc}") from exc


def promote(registry: str | Path, version: str, force: bool = False,
            reason: str = "") -> dict:
    """Activate ``version`` (see the module docstring); return the history event.

    Raises
    ------
    PromotionRefused
        If it does not load, its report is missing or says worse (without ``force``), or
        ``force`` comes without a reason.
    ValueError
        If ``version`` is not registered.
    """
    path = reg.model_path(registry, version)
    if not path.is_file():
        raise ValueError(f"version {version!r} is not in the registry {registry} "
                         f"(registered: {reg.versions(registry)})")
    if force and not reason.strip():
        raise PromotionRefused("--force needs --reason TEXT (it is recorded in the history)")
    check_loads(path)
    report_path = path.parent / REPORT_FILE
    verdict = None
    if report_path.is_file():
        verdict = json.loads(report_path.read_text()).get("verdict")
    if verdict not in ADMITS and not force:
        why = (f"its compare report says NEW is {verdict}" if verdict
               else f"it has no {REPORT_FILE}")
        raise PromotionRefused(f"not promoting {version}: {why}; use --force --reason TEXT "
                               "to activate it anyway")
    action = "promote" if verdict in ADMITS else "force-promote"
    return reg.set_active(registry, version, action, reason, {"verdict": verdict})


def active_stack(registry: str | Path) -> list[str]:
    """Return the promotions not rolled back, oldest first (the last one is active)."""
    stack: list[str] = []
    for event in reg.history(registry):
        if event["action"] == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(event["version"])
    return stack


def rollback(registry: str | Path, reason: str = "") -> dict:
    """Re-activate the version active before the current one; return the history event.

    Raises
    ------
    ValueError
        If there is no earlier version to go back to.
    """
    stack = active_stack(registry)
    if len(stack) < 2:
        raise ValueError(f"nothing to roll back to in {registry} (active: "
                         f"{stack[-1] if stack else 'none'})")
    return reg.set_active(registry, stack[-2], "rollback", reason)
