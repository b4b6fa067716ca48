"""Benchmark: CPU speed of U-Net decoder designs, and where a U-Net's CPU time goes.

Builds each architecture of ``trainer.nn.models.UNet`` with random weights (speed does not
depend on the weights), exports it to ONNX, quantises it to int8 on real CT, and times both
files with the onnx engine on the lung-cropped central slices of a real series, prepared as the
pipeline does. ONNX Runtime's profiler attributes each node's time to its output's
resolution, which gives the share of int8 time spent at full resolution. Ratios are against
the first row, measured in the same run.

Run from the repository root::

    .venv/bin/python -m experiments.decoders --series /tmp/lidc/LIDC-IDRI-0002
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_threads, machine_description, series_dir, table
from benchmarks.engines import lung_geometry, model_throughput, real_batch

VARIANTS = (("concat", 12), ("concat", 8), ("concat", 16), ("additive", 12), ("additive", 16))


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="python -m experiments.decoders", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", required=True, help="series folder or .tar.xz")
    p.add_argument("--threads", type=int, default=cpu_threads())
    p.add_argument("--slices", type=int, default=32, help="central lung slices timed")
    p.add_argument("--repeats", type=int, default=3, help="best of this many passes")
    return p


def export_variant(decoder: str, base: int, folder: Path) -> tuple[Path, int, float]:
    """Export a randomly initialised U-Net; return the ONNX path, parameters and GMAC."""
    import torch

    from engines.spec import write_spec
    from trainer.config import build_config, spec_from_config
    from trainer.export.exporter import count_flops_256, export_onnx
    from trainer.nn.models import ProbabilityModel, build_model

    torch.manual_seed(0)
    cfg = build_config({"base_width": base, "decoder": decoder})
    net = build_model("UNet", cfg).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    path = folder / f"{decoder}-{base}.onnx"
    channels = len(cfg.slice_offsets_mm)
    export_onnx(ProbabilityModel(net), path, channels, cfg.size_multiple)
    write_spec(spec_from_config(cfg), path)
    params = sum(p.numel() for p in net.parameters())
    return path, params, count_flops_256(net, channels)


def full_resolution_share(path: Path, batch: np.ndarray, threads: int) -> float:
    """Share of ONNX Runtime node time whose output has the input's height and width."""
    session = _profiling_session(path, threads)
    for i in range(0, len(batch), 8):
        session.run(None, {"input": batch[i:i + 8]})
    events = json.loads(Path(session.end_profiling()).read_text())
    h, w = batch.shape[2:]
    by_resolution: collections.Counter[bool] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        shapes = [dims for out in event["args"].get("output_type_shape", [])
                  for dims in out.values()]
        full = any(_has_plane(dims, h, w) for dims in shapes)
        by_resolution[full] += event["dur"]
    total = sum(by_resolution.values())
    return by_resolution[True] / total if total else float("nan")


def _has_plane(dims: list[int], h: int, w: int) -> bool:
    return any(dims[i] == h and dims[i + 1] == w for i in range(len(dims) - 1))


def _profiling_session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    """Print the table of decoder variants."""
    from engines.quantize import quantize_int8
    from pipeline.series import load_series_dir
    from trainer.config import build_config, spec_from_config

    args = build_parser().parse_args(argv)
    series = load_series_dir(series_dir(Path(args.series)))
    slices, box = lung_geometry(series)
    batch = real_batch(series, spec_from_config(build_config({})), slices, box, args.slices)
    print(f"# {machine_description()}")
    print(f"# {args.threads} threads; input batch {batch.shape}")
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for decoder, base in VARIANTS:
            path, params, gmac = export_variant(decoder, base, Path(tmp))
            int8 = quantize_int8(path, [batch[i:i + 8] for i in range(0, len(batch), 8)])
            fp32_speed = model_throughput("onnx", path, batch, args.threads, 8, args.repeats,
                                          "fp32")[0]
            int8_speed = model_throughput("onnx", int8, batch, args.threads, 8, args.repeats,
                                          "int8")[0]
            share = full_resolution_share(int8, batch, args.threads)
            reference = reference or (fp32_speed, int8_speed)
            rows.append({
                "decoder": decoder, "base": base, "params": f"{params:,}",
                "GMAC/256²": f"{gmac:.2f}", "fp32 sl/s": f"{fp32_speed:.1f}",
                "int8 sl/s": f"{int8_speed:.1f}",
                "fp32 ratio": f"{fp32_speed / reference[0]:.2f}",
                "int8 ratio": f"{int8_speed / reference[1]:.2f}",
                "int8 time at full res": f"{share:.0%}",
            })
            print(f"  {decoder} {base}: done", flush=True)
    print(table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
