"""Report stage of the study: export, evaluate on held-out patients, write results + plot."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.config import TrainConfig
from trainer.evaluation.study import INITS, METHODS, run_name, test_patients


def _evaluate_model(onnx_path: Path, records) -> dict:
    from engines import create_engine
    from trainer.evaluation.evaluate import crop_model_segmenter, evaluate_crops

    with create_engine("onnx", onnx_path, threads=2) as engine:
        return evaluate_crops(crop_model_segmenter(engine), records)


def evaluate_runs(cfg: TrainConfig, root: Path, fractions: list[float]) -> dict:
    """Export and evaluate every finished fine-tuning run and the two baselines.

    Results are cached in ``root/<run>/test_metrics.json`` so a re-run only adds what is new.
    """
    from trainer.evaluation.evaluate import crop_baseline_segmenter, evaluate_crops, select_records
    from trainer.export.exporter import export_checkpoint

    records = select_records(cfg.vois_dir, test_patients(cfg))
    results: dict = {}
    for name in ("threshold", "kmeans"):
        results[name] = _cached(root / f"baseline_{name}" / "test_metrics.json",
                                lambda n=name: evaluate_crops(crop_baseline_segmenter(n), records))
    for frac in fractions:
        for init in METHODS:
            run = root / run_name(init, frac)
            if not (run / "final.pt").is_file():
                continue

            def compute(run=run):
                onnx = run / "model.onnx"
                if not onnx.is_file() or onnx.stat().st_mtime < (run / "final.pt").stat().st_mtime:
                    export_checkpoint(run / "final.pt", onnx, with_pt2=False)
                return _evaluate_model(run / "model.onnx", records)

            results[run.name] = _cached(run / "test_metrics.json", compute)
    return results


def _cached(path: Path, compute) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def _cell(res: dict | None, key: str = "dice_mean") -> str:
    return "n/a" if not res else f"{res[key]:.3f}"


def _texture(res: dict | None, texture: str) -> str:
    if not res or texture not in res["by_texture"]:
        return "n/a"
    return f"{res['by_texture'][texture]['dice_mean']:.3f}"


def results_table(results: dict, fractions: list[float]) -> str:
    """Markdown table: mean per-nodule Dice per initialisation and label fraction."""
    head = "| method | " + " | ".join(f"{int(f * 100)}% labels" for f in fractions) + " |"
    lines = [head, "|---" * (len(fractions) + 1) + "|"]
    for init in METHODS:
        cells = [_cell(results.get(run_name(init, f))) for f in fractions]
        lines.append(f"| U-Net, {_label(init)} | " + " | ".join(cells) + " |")
    for name in ("threshold", "kmeans"):
        lines.append(f"| {name} baseline (no labels) | "
                     + " | ".join(_cell(results.get(name)) for _ in fractions) + " |")
    return "\n".join(lines)


def _label(method: str) -> str:
    return f"{method} init"


def detail_table(results: dict) -> str:
    """Markdown table of every evaluated entry with precision/recall and texture Dice."""
    lines = ["| run | n | Dice mean | Dice median | IoU | precision | recall | solid | "
             "part-solid | non-solid |", "|---" * 10 + "|"]
    for name, res in results.items():
        lines.append(
            f"| {name} | {res['n']} | {res['dice_mean']:.3f} | {res['dice_median']:.3f} | "
            f"{res['iou_mean']:.3f} | {res['precision']:.3f} | {res['recall']:.3f} | "
            f"{_texture(res, 'solid')} | {_texture(res, 'part-solid')} | "
            f"{_texture(res, 'non-solid')} |")
    return "\n".join(lines)


def findings(results: dict, fractions: list[float]) -> str:
    """Plain statements computed from the numbers: gain of each pretraining over scratch."""
    lines = []
    for frac in fractions:
        base = results.get(run_name("scratch", frac))
        if not base:
            continue
        gains = {init: results[run_name(init, frac)]["dice_mean"] - base["dice_mean"]
                 for init in INITS[1:] if run_name(init, frac) in results}
        if not gains:
            continue
        best = max(gains, key=gains.get)
        lines.append(f"- {int(frac * 100)}% labels: scratch {base['dice_mean']:.3f}; best "
                     f"pretraining {best} {gains[best]:+.3f} "
                     f"({', '.join(f'{k} {v:+.3f}' for k, v in gains.items())}).")
    scratch10 = results.get(run_name("scratch", 0.1))
    at10 = [results[run_name(i, 0.1)]["dice_mean"] - scratch10["dice_mean"]
            for i in INITS[1:] if scratch10 and run_name(i, 0.1) in results]
    if at10:
        verdict = "meets" if max(at10) >= 0.05 else "does NOT meet"
        lines.append(f"- At 10% labels the largest pretraining gain is {max(at10):+.3f} Dice: "
                     f"this {verdict} the claimed gain of >= 5 points over scratch.")
    return "\n".join(lines)


def plot_study(results: dict, fractions: list[float], path: Path) -> Path:
    """Dice against label fraction, one line per initialisation, baselines dashed."""
    from trainer.evaluation.plots import headless_pyplot

    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for init in METHODS:
        pts = [(f * 100, results[run_name(init, f)]["dice_mean"]) for f in fractions
               if run_name(init, f) in results]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=_label(init))
    for name, style in (("threshold", "--"), ("kmeans", ":")):
        if name in results:
            ax.axhline(results[name]["dice_mean"], linestyle=style, color="gray", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training patients (%)")
    ax.set_ylabel("mean per-nodule Dice (held-out patients)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def series_table(root: Path) -> str:
    """Markdown table of whole-series results saved as ``root/series_*.json``."""
    rows = ["| entry | slices | lesions found | false positives | voxel Dice | voxel sens. | "
            "voxel AUC |", "|---" * 7 + "|"]
    for path in sorted(root.glob("series_*.json")):
        r = json.loads(path.read_text())
        rows.append(f"| {path.stem[7:]} | {r['n_slices']} | {r['n_detected_lesions']}/"
                    f"{r['n_reference_lesions']} | {r['false_positives']} | "
                    f"{r['voxel_dice']:.3f} | {r['voxel_sensitivity']:.3f} | "
                    f"{r['voxel_auc']:.3f} |")
    return "\n".join(rows) if len(rows) > 2 else "(no whole-series results in the study folder)"


def protocol(root: Path, fractions: list[float]) -> str:
    """Describe how the study runs were made, read from their saved configs."""
    def cfg(name: str) -> dict:
        path = root / name / "config.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    ft, pre = cfg(run_name("scratch", fractions[-1])), cfg("vae")
    return (
        f"Split by patient (seed 0; LIDC-IDRI-0001/0002 always held out). Pretraining: "
        f"{pre.get('steps', '?')} steps each (VAE; SimCLR from scratch; SimCLR from the VAE) on "
        f"unlabelled patches of all training patients. Fine-tuning: "
        f"{ft.get('steps', '?')} steps of batch {ft.get('batch_size', '?')} for every label "
        f"fraction, negative_fraction {ft.get('negative_fraction', '?')}, device "
        f"{ft.get('device', '?')}. Each model is exported to ONNX and run through the ONNX engine "
        f"on every crop of the held-out test patients (each crop centred in a 50 mm air canvas, "
        f"as in training). Baselines: HU threshold (-400) and 2-class k-means on the crop, "
        f"keeping the component nearest the crop centre (`trainer/evaluation/baselines.py`)."
    )


def write_report(cfg: TrainConfig, root: Path, fractions: list[float], out: Path,
                 config: str | None = None) -> Path:
    """Evaluate the study runs and write ``out`` (Markdown), a PNG and a JSON next to it.

    ``config`` (the recipe file the study ran with) enters the commands the report shows.
    """
    config_arg = f" --config {config}" if config else ""
    results = evaluate_runs(cfg, root, fractions)
    plot = plot_study(results, fractions, out.with_name("label_efficiency.png"))
    slim = {k: {kk: vv for kk, vv in v.items() if kk != "per_nodule"} for k, v in results.items()}
    out.with_name("results.json").write_text(json.dumps(slim, indent=1))
    text = ["# Label-efficiency study (generated by `trainer study`)", "",
            "Regenerate (3 pretraining and one fine-tuning process per initialisation and "
            "label fraction):", "",
            "```", f"trainer cache{config_arg}",
            f"trainer study{config_arg} --root {root}", "```", "",
            "Whole-series rows come from `trainer evaluate --series DIR --mask MASK "
            f"[--model M | --baseline threshold|kmeans] --json {root}/series_<name>.json`.", "",
            "Mean per-nodule 3D Dice on the crops of the held-out test patients.", "",
            protocol(root, fractions), "",
            results_table(results, fractions), "", f"![plot]({plot.name})", "",
            "## Findings (computed from the table)", "", findings(results, fractions), "",
            "## All entries", "", detail_table(results), "",
            "## Whole series (reference: voxels marked by >= 2 readers)", "",
            series_table(root), ""]
    out.write_text("\n".join(text))
    return out
