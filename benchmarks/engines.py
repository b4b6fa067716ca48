"""Benchmark: where the time goes when lungseg segments a whole CT series on the CPU.

Per series and engine: end-to-end ``lungseg segment`` wall time and peak memory (subprocess),
its stages (lesions.json timings), the I/O floor (read + decode the same DICOM files), the
ratio end-to-end / floor, model-only throughput and the share of time outside the model; and,
in the same run, a MONAI reference (``monai_ref``) with the ratio ours / MONAI.

Run from the repository root::

    tar -xJf ../shared/data/lidc-series/LIDC-IDRI-0002.tar.xz -C /tmp/lidc
    .venv/bin/python -m benchmarks.engines \\
        --series ../shared/data/lidc-series/LIDC-IDRI-0001 --series /tmp/lidc/LIDC-IDRI-0002 \\
        --write-doc docs/performance.md

(``--series`` also accepts the ``.tar.xz`` directly; it is extracted under /tmp once.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    REPO,
    WORK,
    cpu_threads,
    dicom_files,
    io_floor,
    machine_description,
    run_segment,
    series_dir,
    source_revision,
    table,
)
from benchmarks.report import write_doc

ENGINES = ("onnx", "onnx-int8", "torch")
STAGES = ("load", "preprocess", "inference", "postprocess", "measure", "write_seg", "write_sr")


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", action="append", required=True,
                   help="series folder or .tar.xz (repeatable)")
    p.add_argument("--model", type=Path, default=REPO / "models" / "lungseg-unet.onnx")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help=f"comma-separated subset of {ENGINES}")
    p.add_argument("--threads", type=int, default=cpu_threads())
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-monai", action="store_true", help="skip the MONAI reference")
    p.add_argument("--monai-slices", type=int, default=None,
                   help="time MONAI on this many central slices and scale (slow on 2 cores)")
    p.add_argument("--monai-match", choices=("flops", "params"), default="flops")
    p.add_argument("--calibration", type=Path, default=REPO / "demo" / "LIDC-IDRI-0001",
                   help="series whose slices calibrate the int8 model")
    p.add_argument("--write-doc", type=Path, default=None, help="update this Markdown file")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    return p


def lung_geometry(series: object) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Slices the pipeline sends to the model and its in-plane crop (same rules as
    ``pipeline.inference.segment_with_predictor``)."""
    from pipeline.inference import lung_slices
    from pipeline.lungs import dilate, fast_lung_mask
    from pipeline.preprocess import bounding_box

    gate = dilate(fast_lung_mask(series.hu, series.spacing), series.spacing, 5.0)
    return lung_slices(gate), bounding_box(gate, (0, 0, 0))


def real_batch(series: object, spec: object, slices: np.ndarray, box: tuple,
               count: int = 32) -> np.ndarray:
    """``count`` central lung slices of ``series`` prepared exactly as the pipeline does."""
    from pipeline.preprocess import prepare_slices

    mid = int(slices[len(slices) // 2])
    lo = max(int(slices[0]), mid - count // 2)
    roi = (slice(lo, min(lo + count, int(slices[-1]) + 1)), box[1], box[2])
    return prepare_slices(series.hu, series.spacing, series.z_positions_mm, spec, roi).batch


def model_throughput(kind: str, model: Path, batch: np.ndarray, threads: int,
                     batch_size: int, repeats: int = 2, precision: str = "fp32",
                     ) -> tuple[float, str]:
    """Best-of-``repeats`` slices/s of ``engine.infer`` over ``batch`` in chunks
    (``precision`` applies to the onnx engine)."""
    from engines import create_engine

    options = ({"threads": threads, "precision": precision} if kind == "onnx"
               else {"threads": threads, "device": "cpu"})
    with create_engine(kind, model, **options) as engine:
        engine.infer(batch[:batch_size])
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(batch), batch_size):
                engine.infer(batch[i:i + batch_size])
            best = min(best, time.perf_counter() - start)
        return len(batch) / best, engine.describe()


def make_int8(model: Path, calibration: Path) -> Path:
    """Quantise ``model`` with slices of the ``calibration`` series (lung crop)."""
    from engines.quantize import quantize_int8
    from engines.spec import read_spec
    from pipeline.series import load_series_dir

    spec = read_spec(model)
    series = load_series_dir(series_dir(calibration))
    slices, box = lung_geometry(series)
    batch = real_batch(series, spec, slices, box, count=32)
    out = WORK / "models" / f"{model.stem}-int8.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    return quantize_int8(model, [batch[i:i + 8] for i in range(0, len(batch), 8)], out)


def snapshot_model(model: Path) -> Path:
    """Copy the model, its ``.pt2`` and sidecar to the work folder so every row of the run
    uses the same files even if the model is replaced meanwhile."""
    import shutil

    folder = WORK / "models" / "snapshot"
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".onnx", ".pt2", ".json"):
        if model.with_suffix(suffix).is_file():
            shutil.copy2(model.with_suffix(suffix), folder / f"{model.stem}{suffix}")
    return folder / model.name


def int8_delta(fp32_row: dict, int8_row: dict, ctx: dict, args: argparse.Namespace) -> dict:
    """Accuracy delta of int8 vs fp32: Dice of the final lesion masks of the two
    ``lungseg segment`` runs, and probability differences on the real benchmark batch."""
    import SimpleITK as sitk

    from engines import create_engine
    from engines.quantize import compare_outputs, dice

    masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(Path(r["out"]) / "mask.nii.gz"))) > 0
             for r in (fp32_row, int8_row)]
    with create_engine("onnx", args.model, threads=args.threads, precision="fp32") as fp32, \
            create_engine("onnx", ctx["int8"], threads=args.threads, precision="int8") as int8:
        probs = compare_outputs(fp32.infer(ctx["batch"]), int8.infer(ctx["batch"]),
                                fp32.spec.threshold)
    return {"dice_vs_fp32": dice(*masks), "lesion_voxels_fp32": int(masks[0].sum()),
            "lesion_voxels": int(masks[1].sum()), "prob_mean_abs_diff": probs["mean_abs_diff"],
            "prob_max_abs_diff": probs["max_abs_diff"], "slice_dice_vs_fp32": probs["dice"]}


def bench_engine(name: str, ctx: dict, args: argparse.Namespace) -> dict:
    """End-to-end and model-only figures of one engine on one series."""
    kind, model = ("onnx", ctx["int8"]) if name == "onnx-int8" else (name, args.model)
    precision = "int8" if name == "onnx-int8" else "fp32"
    options = (f"precision={precision}",) if kind == "onnx" else ()
    out = WORK / "out" / ctx["series"] / name
    run = run_segment(ctx["folder"], out, kind, model, args.threads, args.batch_size, options)
    sps, described = model_throughput(kind, model, ctx["batch"], args.threads, args.batch_size,
                                      precision=precision)
    model_s = ctx["model_slices"] / sps
    row = {"series": ctx["series"], "slices": ctx["slices"], "engine": name,
           "backend": described, "e2e_s": run.wall_s, "pipeline_s": run.extra["timings"]["total"],
           "peak_mb": run.peak_rss_mb, "floor_s": ctx["floor_s"],
           "e2e_over_floor": run.wall_s / ctx["floor_s"], "model_slices": ctx["model_slices"],
           "slices_per_s": sps, "model_s": model_s, "outside_model": 1 - model_s / run.wall_s,
           "lesions": run.extra["lesions"], "out": str(out)}
    row.update({f"t_{k}": v for k, v in run.extra["timings"].items()})
    return row


def bench_series(path: str, args: argparse.Namespace, engines: list[str],
                 int8: Path | None) -> tuple[list[dict], dict | None]:
    """All rows for one series, plus the MONAI reference row."""
    from engines.spec import read_spec
    from pipeline.series import load_series_dir

    folder = series_dir(path)
    files = dicom_files(folder)
    floor = io_floor(files)
    name = Path(path).name.split(".tar")[0] if "LIDC" in str(path) else folder.name
    print(f"{name}: {len(files)} slices, I/O floor {floor:.2f} s", flush=True)
    if not args.model.is_file():
        print(f"  model {args.model} not found: model rows skipped (export one with "
              "`trainer export`)", flush=True)
        return [{"series": name, "slices": len(files), "floor_s": floor}], None
    spec = read_spec(args.model)
    series = load_series_dir(folder)
    slices, box = lung_geometry(series)
    ctx = {"series": name, "folder": folder, "slices": len(files), "floor_s": floor,
           "model_slices": len(slices), "batch": real_batch(series, spec, slices, box),
           "int8": int8}
    rows = []
    for engine in engines:
        rows.append(bench_engine(engine, ctx, args))
        print(f"  {engine}: e2e {rows[-1]['e2e_s']:.2f} s", flush=True)
    if "onnx" in engines and "onnx-int8" in engines:
        rows[engines.index("onnx-int8")].update(int8_delta(
            rows[engines.index("onnx")], rows[engines.index("onnx-int8")], ctx, args))
    monai = None if args.no_monai else bench_monai(series, spec, rows, args)
    return rows, monai


def bench_monai(series: object, spec: object, rows: list[dict],
                args: argparse.Namespace) -> dict:
    """MONAI reference on the same series, compared with our best engine's model time."""
    from benchmarks.monai_ref import matched_unet, measure_size, our_size, run_reference

    ours = our_size(args.model, spec.in_channels)
    net, base = matched_unet(spec.in_channels, ours, args.monai_match)
    theirs = measure_size(net, spec.in_channels)
    ref = run_reference(series.hu, series.z_positions_mm, spec, net, args.threads,
                        max_slices=args.monai_slices)
    fp32 = next((r for r in rows if r["engine"] == "onnx"), rows[0])
    ours_s = fp32["model_s"]
    ours_stage = fp32["t_preprocess"] + fp32["t_inference"]
    return {"series": fp32["series"], "monai_net": f"UNet base {base}, 2 res units",
            "monai_params": theirs.params, "monai_gflop": theirs.gflop_per_slice,
            "our_params": ours.params, "our_gflop": ours.gflop_per_slice,
            "monai_s": ref["seconds"], "monai_prep_s": ref["prep_seconds"],
            "monai_measured_slices": ref["measured_slices"], "ours_model_s": ours_s,
            "model_ratio": ours_s / ref["seconds"],
            "ours_stage_s": ours_stage,
            "stage_ratio": ours_stage / (ref["seconds"] + ref["prep_seconds"])}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print tables; optionally update the performance document."""
    args = build_parser().parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        print(f"unknown engines {unknown}; choose from {ENGINES}", file=sys.stderr)
        return 2
    machine = machine_description()
    revision = source_revision()
    int8 = None
    if args.model.is_file():
        args.model = snapshot_model(args.model)
    if args.model.is_file() and "onnx-int8" in engines:
        int8 = make_int8(args.model, args.calibration)
    results, monai = [], []
    for path in args.series:
        rows, ref = bench_series(path, args, engines, int8)
        results += rows
        monai += [ref] if ref else []
    machine["code"] = revision
    if source_revision() != revision:
        machine["code"] += f" -> {source_revision()} (code changed during the run)"
    text = render(results, monai, machine, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": results, "monai": monai},
                                        indent=2, default=str))
    if args.write_doc:
        write_doc(args.write_doc, text)
    return 0


def render(rows: list[dict], monai: list[dict], machine: dict, args: argparse.Namespace) -> str:
    """Markdown with the machine, the command and the result tables."""
    cmd = "python -m benchmarks.engines " + " ".join(
        f"--series {s}" for s in args.series) + f" --threads {args.threads}" + (
        f" --monai-slices {args.monai_slices}" if args.monai_slices else "") + (
        " --no-monai" if args.no_monai else "") + f" --engines {args.engines}"
    parts = ["Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()),
             f"Command: `{cmd}`", f"Model: `{args.model.name}`", ""]
    parts.append(table(rows, ["series", "slices", "engine", "e2e_s", "peak_mb", "floor_s",
                              "e2e_over_floor", "model_slices", "slices_per_s", "model_s",
                              "outside_model"]))
    quant = [r for r in rows if "dice_vs_fp32" in r]
    if quant:
        parts += ["", "Int8 accuracy delta (vs the fp32 model):", ""]
        parts.append(table(quant, ["series", "dice_vs_fp32", "lesion_voxels_fp32",
                                   "lesion_voxels", "slice_dice_vs_fp32", "prob_mean_abs_diff",
                                   "prob_max_abs_diff"]))
    parts += ["", "Stages (seconds, from lesions.json):", ""]
    parts.append(table(rows, ["series", "engine", *[f"t_{s}" for s in STAGES], "t_total"]))
    if monai:
        parts += ["", "MONAI reference (same threads, whole volume):", ""]
        parts.append(table(monai, ["series", "monai_net", "monai_params", "monai_gflop",
                                   "our_params", "our_gflop", "monai_measured_slices",
                                   "monai_s", "ours_model_s", "model_ratio", "monai_prep_s",
                                   "ours_stage_s", "stage_ratio"]))
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
