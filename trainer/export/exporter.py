"""Export a fine-tuned U-Net: ONNX, ``.pt2`` and sidecar, with a parity check.

ONNX has opset 17 and dynamic batch/height/width; the ``.pt2`` is a ``torch.export``
ExportedProgram for the torch engine.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from engines.spec import ModelSpec, write_spec
from trainer.config import spec_from_config
from trainer.nn.models import MeanProbabilityModel, ProbabilityModel
from trainer.train.checkpoint import model_from_checkpoint

OPSET = 17
PARITY_TOLERANCE = 1e-4
INPUT_CONTRACT = ("slice_offsets_mm", "pixel_spacing_mm", "hu_window", "size_multiple", "threshold",
                  "min_lesion_volume_mm3")
"""Sidecar fields every member of an exported ensemble must share."""


class ParityError(RuntimeError):
    """Raised when the ONNX model disagrees with PyTorch beyond the tolerance."""


def _dynamic_shapes(multiple: int) -> dict:
    batch = torch.export.Dim("batch", min=1, max=4096)
    h = torch.export.Dim("h", min=1, max=256)
    w = torch.export.Dim("w", min=1, max=256)
    return {"x": {0: batch, 2: multiple * h, 3: multiple * w}}


def export_onnx(
    model: torch.nn.Module, path: Path, channels: int, multiple: int,
    output_name: str = "probabilities",
) -> Path:
    """Write ``model`` as a single-file ONNX model with dynamic batch, height and width."""
    import onnx

    example = (torch.rand(2, channels, 4 * multiple, 3 * multiple),)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model, example, str(tmp_path), opset_version=OPSET, dynamo=True,
            dynamic_shapes=_dynamic_shapes(multiple), input_names=["input"],
            output_names=[output_name],
        )
        proto = onnx.load(str(tmp_path))
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


def export_pt2(model: torch.nn.Module, path: Path, channels: int, multiple: int) -> Path:
    """Write a ``torch.export`` ExportedProgram with dynamic batch, height and width."""
    example = (torch.rand(2, channels, 4 * multiple, 3 * multiple),)
    program = torch.export.export(model, example, dynamic_shapes=_dynamic_shapes(multiple))
    torch.export.save(program, str(path))
    return path


def load_for_export(
    checkpoint: str | Path, out_path: str | Path, class_name: str,
) -> tuple[torch.nn.Module, object, dict, Path]:
    """Check the target path and load a checkpoint holding a ``class_name`` network.

    Returns
    -------
    net, cfg, data, out_path
        The network (eval mode), its :class:`trainer.config.TrainConfig`, the checkpoint's
        content and ``out_path`` as a Path.

    Raises
    ------
    ValueError
        If ``out_path`` does not end in ``.onnx`` or the checkpoint holds another class.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise ValueError(f"out_path must end in .onnx, got {out_path}")
    net, cfg, data = model_from_checkpoint(checkpoint)
    if data["class_name"] != class_name:
        raise ValueError(f"checkpoint must hold a {class_name}, got {data['class_name']}")
    return net, cfg, data, out_path


def parity_check(model: torch.nn.Module, onnx_path: Path, channels: int, multiple: int) -> float:
    """Return the largest |ONNX - PyTorch| probability difference over a few input sizes.

    Raises
    ------
    ParityError
        If the difference exceeds :data:`PARITY_TOLERANCE`.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, h, w in ((1, 2, 3), (3, 4, 4), (2, 16, 13)):
        x = rng.random((n, channels, h * multiple, w * multiple), dtype=np.float32)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > PARITY_TOLERANCE:
        raise ParityError(f"ONNX/PyTorch max difference {worst:.3g} > {PARITY_TOLERANCE}")
    return worst


def count_flops_256(model: torch.nn.Module, channels: int) -> float:
    """Multiply-accumulate count (GMAC) of one 256x256 slice through convolutions."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, channels, 256, 256))
    for h in handles:
        h.remove()
    return total / 1e9


class Member(NamedTuple):
    """One loaded checkpoint of an export: its path, network, config and content."""

    path: Path
    net: torch.nn.Module
    cfg: object
    data: dict


def load_members(
    checkpoints: Sequence[str | Path], out_path: str | Path,
) -> tuple[list[Member], Path]:
    """Load the U-Net checkpoints of an export (one model, or the members of an ensemble).

    Raises
    ------
    ValueError
        If no checkpoint is given, one is not a U-Net, ``out_path`` does not end in ``.onnx``,
        or the members differ in a field of :data:`INPUT_CONTRACT` (their inputs or outputs
        would not mean the same thing).
    """
    if not checkpoints:
        raise ValueError("export needs at least one checkpoint")
    members = []
    for path in checkpoints:
        net, cfg, data, out_path = load_for_export(path, out_path, "UNet")
        members.append(Member(Path(path), net, cfg, data))
    first = dataclasses.asdict(spec_from_config(members[0].cfg))
    for member in members[1:]:
        other = dataclasses.asdict(spec_from_config(member.cfg))
        differ = [k for k in INPUT_CONTRACT if other[k] != first[k]]
        if differ:
            raise ValueError(f"ensemble member {member.path} differs from {members[0].path} "
                             f"in {', '.join(differ)}")
    return members, Path(out_path)


def _ensemble_info(members: list[Member]) -> dict:
    rows = [{"checkpoint": m.path.name, "run": m.path.parent.name, "steps": m.data["step"],
             "seed": m.cfg.seed, "base_width": m.cfg.base_width, "init": m.cfg.init}
            for m in members]
    return {"members": rows, "combination": "mean of the members' probabilities"}


def export_checkpoint(
    checkpoint: str | Path | Sequence[str | Path], out_path: str | Path,
    extra: dict | None = None, with_pt2: bool = True, version: str | None = None,
) -> tuple[ModelSpec, float]:
    """Export a U-Net checkpoint (or an ensemble) to ``out_path`` plus ``.pt2`` and ``.json``.

    Parameters
    ----------
    checkpoint : str, Path or sequence of them
        A ``finetune`` checkpoint; several export one model whose output is the mean of
        their probabilities (sidecar ``extra.ensemble``; its training record is the first's).
    out_path : str or Path
        Target ``.onnx`` path; the sidecar and ``.pt2`` share its stem.
    extra : dict, optional
        Provenance and metrics merged into the sidecar's ``extra``.
    with_pt2 : bool
        Also write the ``.pt2`` ExportedProgram.
    version : str, optional
        Sidecar version; default the checkpoint config's ``model_version``.

    Returns
    -------
    spec : ModelSpec
        The sidecar written.
    parity : float
        Largest ONNX/PyTorch difference.

    Raises
    ------
    ValueError
        If a checkpoint is not a U-Net, ensemble members differ in their input contract,
        or ``out_path`` does not end in ``.onnx``.
    ParityError
        If ONNX and PyTorch disagree.
    """
    checkpoints = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    members, out_path = load_members(checkpoints, out_path)
    nets = [m.net for m in members]
    cfg, data = members[0].cfg, members[0].data
    model = (ProbabilityModel(nets[0]) if len(nets) == 1 else MeanProbabilityModel(nets)).eval()
    channels, multiple = len(cfg.slice_offsets_mm), cfg.size_multiple
    out_path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out_path, channels, multiple)
    parity = parity_check(model, out_path, channels, multiple)
    if with_pt2:
        export_pt2(model, out_path.with_suffix(".pt2"), channels, multiple)
    info = {
        "parameters": int(sum(p.numel() for net in nets for p in net.parameters())),
        "gmac_per_256x256_slice": round(sum(count_flops_256(n, channels) for n in nets), 3),
        "onnx_opset": OPSET, "onnx_torch_max_abs_diff": parity,
        "normalisation": "HU clipped to hu_window, mapped linearly to [0, 1]",
        "output": "sigmoid probabilities (n, 1, h, w)",
        "training": {**data.get("extra", {}), "config": cfg.to_dict(), "steps": data["step"]},
    }
    spec = spec_from_config(cfg)
    if len(nets) > 1:
        info["ensemble"] = _ensemble_info(members)
        spec = dataclasses.replace(spec, architecture=f"mean of {len(nets)} x {spec.architecture}")
    spec = dataclasses.replace(spec, extra={**info, **(extra or {})})
    if version:
        spec = dataclasses.replace(spec, version=version)
    write_spec(spec, out_path)
    return spec, parity
