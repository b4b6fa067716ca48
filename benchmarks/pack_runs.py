"""Pack training runs into a few small files for the trip back from a GPU machine, and unpack.

Each run's ``final.pt`` (or ``last.pt`` when it was stopped) loses its optimizer state; its
weights travel as fp16, its batch-norm buffers (``running_*``) stay fp32, since a running
variance can exceed fp16's range (65,504). Files hold up to ``--max-mb`` MB of tensors each.

Usage::

    python3 benchmarks/pack_runs.py pack RUNS_DIR OUT_DIR [--max-mb 13]
    python3 benchmarks/pack_runs.py unpack PACK_DIR RUNS_DIR   # writes RUNS_DIR/<run>/final.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def _slim(checkpoint: dict, source: str) -> dict:
    checkpoint["optimizer"] = None
    checkpoint["state_dict"] = {
        k: v.half() if v.is_floating_point() and "running_" not in k else v
        for k, v in checkpoint["state_dict"].items()}
    checkpoint.setdefault("extra", {})["packed_from"] = source
    return checkpoint


def pack(runs: Path, out: Path, max_mb: float = 13.0) -> list[list[str]]:
    """Write ``out/pack<i>.pt`` files, each a dict ``{run name: slimmed checkpoint}``.

    Returns
    -------
    list of list of str
        The run names in each file.
    """
    groups: list[dict] = []
    size = 0.0
    for run in sorted(p for p in runs.iterdir() if p.is_dir()):
        src = run / "final.pt" if (run / "final.pt").is_file() else run / "last.pt"
        if not src.is_file():
            continue
        ck = _slim(torch.load(src, map_location="cpu", weights_only=False), src.name)
        n = sum(v.numel() * v.element_size() for v in ck["state_dict"].values()) / 1e6
        if not groups or size + n > max_mb:
            groups.append({})
            size = 0.0
        groups[-1][run.name] = ck
        size += n
    out.mkdir(parents=True, exist_ok=True)
    for i, group in enumerate(groups):
        torch.save(group, out / f"pack{i}.pt")
    return [list(g) for g in groups]


def unpack(packs: Path, runs: Path) -> list[tuple[str, int, str]]:
    """Restore fp32 checkpoints as ``runs/<name>/final.pt``; return (name, step, source) rows."""
    rows = []
    for path in sorted(packs.glob("pack*.pt")):
        for name, ck in torch.load(path, map_location="cpu", weights_only=False).items():
            ck["state_dict"] = {k: v.float() if v.is_floating_point() else v
                                for k, v in ck["state_dict"].items()}
            (runs / name).mkdir(parents=True, exist_ok=True)
            torch.save(ck, runs / name / "final.pt")
            rows.append((name, int(ck["step"]), ck["extra"]["packed_from"]))
    return rows


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--max-mb", type=float, default=13.0)
    args = parser.parse_args()
    if args.action == "pack":
        print("packed", pack(args.source, args.target, args.max_mb))
    else:
        for row in unpack(args.source, args.target):
            print(*row)


if __name__ == "__main__":
    main()
