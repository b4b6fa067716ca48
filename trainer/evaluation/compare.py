"""``trainer compare OLD NEW --list HELDOUT``: two exported models on the same series.

Both models run through :func:`trainer.evaluation.evaluate_list.evaluate_series_list` (the
product path) on every listed series. Three figures are compared: lesions found
(``lesion_sensitivity``), false positives per scan and the mean per-lesion Dice. Their 95 %
confidence intervals come from a paired bootstrap over **patients** (the list's pseudonyms;
every series of a drawn patient enters together, both models see the same draw; seeded).

**Rule.** For each figure the bootstrap gives an interval of NEW - OLD. NEW is *worse* when
lesions found or per-lesion Dice is lower beyond the interval (its upper end < 0) or false
positives per scan are higher beyond it (its lower end > 0). NEW is *better* when it is not
worse and at least one figure improved beyond its interval; otherwise it is *not worse*.
``trainer promote`` accepts ``better`` and ``not worse``. A figure that is undefined on the
list (no reference lesion: no sensitivity or Dice) is left out of the rule and reported so.
"""

from __future__ import annotations

import numpy as np

FIGURES = ("lesion_sensitivity", "false_positives_per_scan", "mean_lesion_dice")
HIGHER_IS_BETTER = {"lesion_sensitivity": True, "false_positives_per_scan": False,
                    "mean_lesion_dice": True}
VERDICTS = ("better", "not worse", "worse")
ADMITS = ("better", "not worse")
"""Verdicts under which ``trainer promote`` activates NEW."""


def figures(rows: list[dict]) -> dict[str, float]:
    """Compute the compared figures of a set of per-series rows (NaN where undefined)."""
    lesions = sum(r["n_reference_lesions"] for r in rows)
    found = sum(r["n_detected_lesions"] for r in rows)
    dice = [d for r in rows for d in r["lesion_dice"]]
    return {"lesion_sensitivity": found / lesions if lesions else float("nan"),
            "false_positives_per_scan": float(np.mean([r["false_positives"] for r in rows])),
            "mean_lesion_dice": float(np.mean(dice)) if dice else float("nan")}


def bootstrap(old_rows: list[dict], new_rows: list[dict], n_boot: int = 2000,
              seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Paired bootstrap over patients: 95 % intervals of OLD, NEW and NEW - OLD per figure.

    Raises
    ------
    ValueError
        If the two row lists do not describe the same series in the same order, or are empty.
    """
    if not old_rows or [r["name"] for r in old_rows] != [r["name"] for r in new_rows]:
        raise ValueError("both models must be evaluated on the same, non-empty series list")
    patients = sorted({r["patient"] for r in old_rows})
    index = {p: [i for i, r in enumerate(old_rows) if r["patient"] == p] for p in patients}
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[float]]] = {k: {f: [] for f in FIGURES}
                                                for k in ("old", "new", "difference")}
    for _ in range(n_boot):
        picked = rng.choice(len(patients), size=len(patients), replace=True)
        rows = [i for p in picked for i in index[patients[p]]]
        old, new = figures([old_rows[i] for i in rows]), figures([new_rows[i] for i in rows])
        for f in FIGURES:
            draws["old"][f].append(old[f])
            draws["new"][f].append(new[f])
            draws["difference"][f].append(new[f] - old[f])
    return {k: {f: _interval(v) for f, v in per.items()} for k, per in draws.items()}


def _interval(values: list[float]) -> list[float]:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if not arr.size:
        return [float("nan"), float("nan")]
    return [float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5))]


def verdict(difference: dict[str, list[float]]) -> tuple[str, list[str]]:
    """Apply the module's rule to the intervals of NEW - OLD; return (verdict, reasons)."""
    worse, better, notes = [], [], []
    for f in FIGURES:
        low, high = difference[f]
        if np.isnan(low):
            notes.append(f"{f}: undefined on this list, left out")
            continue
        sign = 1.0 if HIGHER_IS_BETTER[f] else -1.0
        lo, hi = sorted((sign * low, sign * high))
        if hi < 0:
            worse.append(f"{f} worse beyond its interval [{low:.3g}, {high:.3g}]")
        elif lo > 0:
            better.append(f"{f} better beyond its interval [{low:.3g}, {high:.3g}]")
    if worse:
        return "worse", worse + notes
    return ("better" if better else "not worse"), (better or ["no figure worse beyond "
                                                              "its interval"]) + notes


def compare_evaluations(old: dict, new: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """Compare two :func:`~trainer.evaluation.evaluate_list.evaluate_series_list` results.

    Returns
    -------
    dict
        ``figures`` (``old``, ``new``), ``intervals`` (bootstrap 95 %: ``old``, ``new``,
        ``difference``), ``verdict`` (one of :data:`VERDICTS`), ``reasons``, the bootstrap
        settings, and the per-series rows of both.

    Raises
    ------
    ValueError
        As :func:`bootstrap`.
    """
    intervals = bootstrap(old["series"], new["series"], n_boot, seed)
    decided, reasons = verdict(intervals["difference"])
    return {"figures": {"old": figures(old["series"]), "new": figures(new["series"])},
            "intervals": intervals, "verdict": decided, "reasons": reasons,
            "bootstrap": {"unit": "patient", "n_boot": n_boot, "seed": seed,
                          "n_patients": len({r["patient"] for r in old["series"]}),
                          "n_series": len(old["series"])},
            "engines": {"old": old["engine"], "new": new["engine"]},
            "series": {"old": old["series"], "new": new["series"]}}


def compare_models(old_model: str, new_model: str, entries: list, threads: int = 2,
                   n_boot: int = 2000, seed: int = 0) -> dict:
    """Evaluate both exported models on ``entries`` and compare them (see the module).

    Both run in full precision (``fp32``): the exported file itself is compared.

    Raises
    ------
    FileNotFoundError
        If a model file does not exist.
    ValueError
        As :func:`trainer.evaluation.evaluate_list.evaluate_series_list`.
    """
    from pathlib import Path

    from trainer.evaluation.evaluate_list import evaluate_series_list

    for path in (old_model, new_model):
        if not Path(path).is_file():
            raise FileNotFoundError(f"model {path} does not exist")
    old = evaluate_series_list(entries, "model", old_model, threads, "fp32")
    new = evaluate_series_list(entries, "model", new_model, threads, "fp32")
    report = compare_evaluations(old, new, n_boot, seed)
    report["models"] = {"old": str(old_model), "new": str(new_model)}
    return report


def table(report: dict) -> str:
    """Side-by-side text table of a comparison report, with the verdict."""
    lines = [f"{'figure':<26}{'old':>22}{'new':>22}{'new - old (95% CI)':>26}"]
    for f in FIGURES:
        cells = []
        for k in ("old", "new"):
            lo, hi = report["intervals"][k][f]
            cells.append(f"{report['figures'][k][f]:.3f} [{lo:.3f}, {hi:.3f}]")
        lo, hi = report["intervals"]["difference"][f]
        lines.append(f"{f:<26}{cells[0]:>22}{cells[1]:>22}{f'[{lo:+.3f}, {hi:+.3f}]':>26}")
    boot = report["bootstrap"]
    lines.append(f"{boot['n_series']} series of {boot['n_patients']} patients, "
                 f"{boot['n_boot']} bootstrap draws over patients (seed {boot['seed']})")
    lines.append(f"verdict: NEW is {report['verdict']} ({'; '.join(report['reasons'])})")
    return "\n".join(lines)
