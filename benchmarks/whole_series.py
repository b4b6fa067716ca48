"""Lesions found in whole CT, per lesion type, by a model on the series it did not train on.

Every annotated whole series of ``../shared/data`` (two LIDC series with reader XML, four
more under ``whole-series/``; one lesion each) runs through the product path (lung or
field search region as the model's sidecar declares, threshold, minimum volume, shape
gate). A series the model trained on (its sidecar's ``extra.training_series``) is listed
but not scored. Per series: whether each lesion is found (the kept components overlapping
it reach a Dice of at least ``FOUND_DICE`` with it), that per-lesion Dice, the voxel Dice of
the whole series (every kept component against every lesion, so false positives lower it),
and the false positives (kept components touching no lesion); then per lesion type
(nodule, ground-glass, mass)::

    python -m benchmarks.whole_series --model models/lungseg-unet.onnx [--precision fp32]
        [--data ../shared/data] [--markdown docs/whole-series.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import REPO, series_dir, table
from benchmarks.lung_field import annotated_series

FOUND_DICE = 0.3
"""A lesion counts as found when the kept components overlapping it reach this Dice."""

LESION_TYPES = {
    "LIDC-IDRI-0001": "nodule", "LIDC-IDRI-0002": "ground-glass", "LIDC-IDRI-0314": "nodule",
    "PYRADIOMICS-LUNG1": "nodule", "PYRADIOMICS-LUNG2": "mass", "IBSI-PHANTOM": "mass",
}
"""The lesion of each annotated series (``../shared/data`` READMEs)."""


def training_series(model: Path) -> list[str]:
    """Return the whole series a model's sidecar says it trained on (empty if none)."""
    sidecar = json.loads(model.with_suffix(".json").read_text())
    return list(sidecar.get("extra", {}).get("training_series", []))


def series_row(case: str, result: dict) -> dict:
    """One table row from :func:`trainer.evaluation.evaluate.evaluate_series`'s result.

    ``Dice`` is the mean per-lesion Dice (``result["lesion_dice"]``, each lesion against
    the kept components overlapping it; a missed lesion scores 0).
    """
    scores = [float(d) for d in result["lesion_dice"]]
    return {"series": case, "type": LESION_TYPES.get(case, "?"), "lesions": len(scores),
            "found": sum(d >= FOUND_DICE for d in scores),
            "Dice": round(sum(scores) / len(scores), 3) if scores else 0.0,
            "voxel Dice": round(float(result["voxel_dice"]), 3),
            "false positives": int(result["false_positives"])}


def by_type(rows: list[dict]) -> list[dict]:
    """Pool the rows per lesion type: found over lesions, false positives per scan."""
    out = []
    for kind in sorted({r["type"] for r in rows}):
        group = [r for r in rows if r["type"] == kind]
        found, lesions = sum(r["found"] for r in group), sum(r["lesions"] for r in group)
        out.append({"type": kind, "found": f"{found}/{lesions}",
                    "mean Dice": round(sum(r["Dice"] for r in group) / len(group), 3),
                    "false positives per scan":
                        round(sum(r["false positives"] for r in group) / len(group), 2)})
    return out


def main(argv: list[str] | None = None) -> None:
    """Print (and with ``--markdown`` write) the per-series and per-type tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8"))
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    from engines import default_model_path
    from trainer.evaluation.evaluate import evaluate_series

    model = args.model or default_model_path()
    trained = training_series(model)
    rows = []
    for case, source, mask in annotated_series(args.data):
        if case in trained:
            print(f"{case}: trained on, not scored", flush=True)
            continue
        result = evaluate_series(series_dir(source), mask, "model", model, 2, args.precision)
        rows.append(series_row(case, result))
        print(rows[-1], flush=True)
    text = (f"Model `{model.name}`; trained on: {', '.join(trained) or 'none declared'}.\n\n"
            + table(rows, list(rows[0])) + "\n\n" + table(by_type(rows), list(by_type(rows)[0])))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
