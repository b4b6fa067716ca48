"""GPU check: torch CUDA engine fp32/fp16/bf16 batch sweep, TensorRT if importable, the
compute-bound limit of the model on this GPU, and end-to-end time for a whole series.

Needs PyTorch (with CUDA), numpy and this repository; pydicom (to read the series),
SimpleITK/highdicom (full pipeline) and TensorRT are used when importable and reported as
skipped otherwise. ``--cpu-dry-run`` runs every step on the CPU with small sizes to show the
script works. Run through ``benchmarks/gpu_check.sh`` (see its header).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.roofline import limits, sync, timed

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "lungseg-unet.onnx"


class Budget:
    """Wall-clock budget: later steps are skipped (with a message) once it runs low."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def allows(self, step: str, needs: float) -> bool:
        if self.left() >= needs:
            return True
        print(f"[skip] {step}: {self.left():.0f} s left of the budget, needs ~{needs:.0f} s")
        return False


def has(module: str) -> bool:
    """True when ``module`` is importable."""
    return importlib.util.find_spec(module) is not None


def environment(torch: Any, device: Any) -> dict:
    """Versions and device facts."""
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "device": str(device), "numpy": np.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, sm=f"{props.major}.{props.minor}",
                   gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    for name in ("onnxruntime", "tensorrt", "pydicom", "SimpleITK", "highdicom", "monai"):
        if has(name):
            module = __import__(name)
            env[name] = getattr(module, "__version__", "present")
        else:
            env[name] = "missing"
    if env["onnxruntime"] != "missing":
        import onnxruntime as ort

        env["onnxruntime_providers"] = ",".join(ort.get_available_providers())
    return env


def load_volume(series: str | None, max_slices: int | None) -> dict | None:
    """HU volume of the series (pydicom); None with a message when it cannot be read."""
    if series is None:
        print("[skip] no --series given: synthetic input, no end-to-end time")
        return None
    if not has("pydicom"):
        print("[skip] pydicom missing: cannot read the series (carry its wheel, see "
              "gpu_check.sh); synthetic input, no end-to-end time")
        return None
    from benchmarks.common import dicom_files, io_floor, series_dir
    from pipeline.series import load_series_dir

    folder = series_dir(series)
    files = dicom_files(folder)
    floor = io_floor(files, repeats=1)
    start = time.perf_counter()
    ct = load_series_dir(folder, threads=min(8, os.cpu_count() or 1))
    load_s = time.perf_counter() - start
    keep = slice(0, max_slices)
    print(f"series {folder.name[-24:]}: {len(files)} slices {ct.hu.shape}, read+decode "
          f"{floor:.2f} s (one thread), load_series_dir {load_s:.2f} s")
    return {"folder": folder, "hu": ct.hu[keep], "z": ct.z_positions_mm[keep],
            "spacing": ct.spacing, "slices": int(ct.hu[keep].shape[0]), "io_floor_s": floor,
            "truncated": int(ct.hu[keep].shape[0]) < ct.hu.shape[0],
            "load_s": load_s}


def model_input(vol: dict | None, spec: Any, torch: Any, device: Any) -> Any:
    """Real model input (whole slices, GPU preprocessing) or a synthetic batch of 464x464."""
    from benchmarks.gpu_prep import prepare

    if vol is None:
        return torch.rand(64, spec.in_channels, 464, 464, device=device)
    hu = torch.from_numpy(np.ascontiguousarray(vol["hu"])).to(device)
    batch, _ = prepare(hu, vol["z"], vol["spacing"], spec)
    return batch


def torch_sweep(model: Path, batch: Any, dtypes: list[str], sizes: list[int], torch: Any,
                device: Any, seconds: float, budget: Budget) -> list[dict]:
    """slices/s of the torch engine per dtype and batch size (device-resident input)."""
    from engines.torch_engine import TorchEngine

    rows = []
    for dtype in dtypes:
        if not budget.allows(f"torch {dtype}", 15):
            break
        engine = TorchEngine(model, device=str(device), dtype=dtype)
        for n in sizes:
            x = batch[:n] if batch.shape[0] >= n else batch.repeat(
                (n + batch.shape[0] - 1) // batch.shape[0], 1, 1, 1)[:n]
            try:
                per_call = timed(lambda x=x, e=engine: e.infer_tensor(x), torch, device,
                                 seconds)
            except torch.OutOfMemoryError:
                print(f"  torch {dtype} batch {n}: out of memory")
                break
            rows.append({"engine": engine.describe(), "dtype": dtype, "batch": n,
                         "slices_per_s": n / per_call})
            print(f"  {engine.describe():45s} batch {n:4d}: {n / per_call:10.1f} slices/s")
        engine.close()
    return rows


def compiled_sweep(model: Path, batch: Any, mode: str, size: int, torch: Any, device: Any,
                   seconds: float, budget: Budget) -> list[dict]:
    """slices/s of the torch engine in fp16 through ``torch.compile(mode=mode)`` at one batch
    size (compilation, minutes with max-autotune, is not timed)."""
    from engines.torch_engine import TorchEngine

    if device.type != "cuda" or not mode or not budget.allows(f"torch.compile {mode}", 150):
        return []
    engine = TorchEngine(model, device=str(device), dtype="fp16", compile=mode)
    x = batch[:size] if batch.shape[0] >= size else batch.repeat(
        (size + batch.shape[0] - 1) // batch.shape[0], 1, 1, 1)[:size]
    start = time.perf_counter()
    engine.infer_tensor(x)
    sync(torch, device)
    print(f"  torch.compile({mode}) first call: {time.perf_counter() - start:.1f} s")
    per_call = timed(lambda: engine.infer_tensor(x), torch, device, seconds)
    print(f"  {engine.describe():45s} batch {size:4d}: {size / per_call:10.1f} slices/s")
    engine.close()
    return [{"engine": engine.describe(), "dtype": "fp16", "batch": size,
             "slices_per_s": size / per_call}]


def tensorrt_sweep(model: Path, batch: Any, sizes: list[int], torch: Any, device: Any,
                   seconds: float, budget: Budget) -> list[dict]:
    """TensorRT fp16 engine (built or loaded from cache) swept like the torch engine."""
    if device.type != "cuda" or not has("tensorrt"):
        print("[skip] TensorRT: " + ("not importable" if device.type == "cuda" else "CPU run"))
        return []
    if not budget.allows("TensorRT build and sweep", 120):
        return []
    from engines.tensorrt_engine import TensorRTEngine
    from engines.trt_cache import Profile

    hw = max(batch.shape[2:])
    profile = Profile(channels=batch.shape[1], min_batch=1, opt_batch=min(64, max(sizes)),
                      max_batch=max(sizes), min_hw=16, opt_hw=hw, max_hw=hw)
    start = time.perf_counter()
    engine = TensorRTEngine(model, profile=profile)
    print(f"  TensorRT engine {'built' if engine.rebuilt else 'loaded'} in "
          f"{time.perf_counter() - start:.1f} s")
    rows = []
    for n in sizes:
        x = batch[:n].contiguous() if batch.shape[0] >= n else batch[:1].repeat(n, 1, 1, 1)
        per_call = timed(lambda x=x: engine.infer_tensor(x), torch, device, seconds)
        rows.append({"engine": engine.describe(), "dtype": "fp16", "batch": n,
                     "slices_per_s": n / per_call})
        print(f"  {engine.describe():45s} batch {n:4d}: {n / per_call:10.1f} slices/s")
    return rows


def end_to_end(vol: dict, model: Path, dtype: str, batch_size: int, torch: Any,
               device: Any) -> dict:
    """Whole-series times: GPU model path from the HU volume, and the full pipeline (DICOM
    files to SEG + SR) when its dependencies are importable."""
    from benchmarks.gpu_prep import segment_volume
    from engines.torch_engine import TorchEngine

    engine = TorchEngine(model, device=str(device), dtype=dtype)
    run = lambda: segment_volume(vol["hu"], vol["z"], vol["spacing"], engine,  # noqa: E731
                                 device, batch_size)
    run()
    sync(torch, device)
    start = time.perf_counter()
    mask = run()
    gpu_path = time.perf_counter() - start
    out = {"slices": vol["slices"], "gpu_model_path_s": gpu_path,
           "gpu_path_plus_load_s": gpu_path + vol["load_s"], "lesion_voxels": int(mask.sum())}
    print(f"  model path (HU in host memory -> mask in host memory), {vol['slices']} slices: "
          f"{gpu_path:.3f} s; with load_series_dir: {gpu_path + vol['load_s']:.3f} s")
    if vol["truncated"]:
        print("[skip] full pipeline: --max-slices given")
    elif all(has(m) for m in ("SimpleITK", "highdicom", "pydicom")):
        out.update(full_pipeline(vol, engine, batch_size))
    else:
        print("[skip] full pipeline (lungseg segment): SimpleITK/highdicom not importable")
    engine.close()
    return out


def full_pipeline(vol: dict, engine: Any, batch_size: int) -> dict:
    """``process_series`` with the already-loaded engine (as the worker runs it)."""
    from pipeline.run import PipelineConfig, Segmenter, process_series

    config = PipelineConfig(segmenter="model", engine="torch", batch_size=batch_size)
    segmenter = Segmenter("model", engine, batch_size)
    process_series(vol["folder"], segmenter, config)
    start = time.perf_counter()
    result = process_series(vol["folder"], segmenter, config)
    wall = time.perf_counter() - start
    print(f"  full pipeline (DICOM files -> SEG + SR in memory): {wall:.2f} s; stages "
          + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))
    return {"pipeline_s": wall, "pipeline_timings": result.timings}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="benchmarks/gpu_check.sh", description=__doc__)
    p.add_argument("--series", default=None, help="series folder or .tar.xz")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="run every step on the CPU with small sizes")
    p.add_argument("--batches", default="1,8,32,64,128,256")
    p.add_argument("--e2e-batch", type=int, default=64)
    p.add_argument("--max-slices", type=int, default=None,
                   help="use only the first N slices for the model path (full pipeline skipped)")
    p.add_argument("--compile", default="max-autotune",
                   help="torch.compile mode for an extra fp16 row at the largest batch "
                   "('' to skip)")
    p.add_argument("--seconds", type=float, default=1.0, help="timing per measured point")
    p.add_argument("--budget", type=float, default=270.0, help="overall seconds")
    p.add_argument("--json", type=Path, default=None, help="write results here "
                   "(default $OUT/gpu_check.json when OUT is set)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the check; return 0 when every attempted step ran."""
    args = build_parser().parse_args(argv)
    budget = Budget(args.budget)
    import torch

    if not args.model.is_file():
        print(f"model {args.model} not found (export one with `trainer export`)")
        return 2
    if args.cpu_dry_run:
        device, dtypes, sizes = torch.device("cpu"), ["fp32", "bf16"], [1, 4]
        args.seconds, args.e2e_batch = min(args.seconds, 0.2), min(args.e2e_batch, 8)
    elif not torch.cuda.is_available():
        print("no CUDA device visible to PyTorch (use --cpu-dry-run to test the script)")
        return 2
    else:
        device, dtypes = torch.device("cuda"), ["fp32", "fp16", "bf16"]
        sizes = [int(v) for v in args.batches.split(",")]
        torch.backends.cudnn.benchmark = True
    results: dict = {"environment": environment(torch, device), "dry_run": args.cpu_dry_run}
    print(json.dumps(results["environment"], indent=1))
    from engines.spec import read_spec

    spec = read_spec(args.model)
    vol = load_volume(args.series, args.max_slices)
    batch = model_input(vol, spec, torch, device)
    print(f"model input: {tuple(batch.shape)} ({'real CT' if vol else 'synthetic'})")
    target = args.json or (Path(os.environ["OUT"]) / "gpu_check.json" if "OUT" in os.environ
                           else None)

    def save() -> None:  # after every step, so a timeout keeps what was measured
        if target:
            target.write_text(json.dumps(results, indent=2, default=str))

    results["limits"] = limits(args.model, batch, torch, device, dtypes, args.seconds)
    save()
    results["torch"] = torch_sweep(args.model, batch, dtypes, sizes, torch, device,
                                   args.seconds, budget)
    save()
    results["torch"] += compiled_sweep(args.model, batch, args.compile, sizes[-1], torch,
                                       device, args.seconds, budget)
    save()
    if vol is not None and budget.allows("end to end", 30):
        best = "bf16" if args.cpu_dry_run else "fp16"
        results["end_to_end"] = end_to_end(vol, args.model, best, args.e2e_batch, torch, device)
        save()
    results["tensorrt"] = tensorrt_sweep(args.model, batch, sizes, torch, device,
                                         args.seconds, budget)
    save()
    summarise(results)
    if target:
        print(f"results written to {target}")
    return 0


def summarise(results: dict) -> None:
    """Print the best throughput per engine/dtype against the compute-bound limit."""
    print("\nsummary (best batch per engine and precision):")
    best: dict[str, dict] = {}
    for row in results.get("torch", []) + results.get("tensorrt", []):
        if row["engine"] not in best or row["slices_per_s"] > best[row["engine"]]["slices_per_s"]:
            best[row["engine"]] = row
    lim = results["limits"]
    for name, row in best.items():
        bound = lim.get(f"compute_bound_slices_per_s_{row['dtype']}")
        memory = lim.get(f"memory_bound_slices_per_s_{row['dtype']}")
        share = (f"{row['slices_per_s'] / bound:6.1%} of compute bound, "
                 f"{row['slices_per_s'] / memory:6.1%} of memory bound") if bound else ""
        print(f"  {name:45s} {row['slices_per_s']:10.1f} slices/s at batch {row['batch']:4d} "
              f"{share}")
    e2e = results.get("end_to_end")
    if e2e:
        print(f"  end to end, {e2e['slices']} slices: model path {e2e['gpu_model_path_s']:.3f} s"
              + (f", full pipeline {e2e['pipeline_s']:.2f} s" if "pipeline_s" in e2e else ""))


if __name__ == "__main__":
    sys.exit(main())
