"""Int8 static quantisation of an ONNX model, calibrated on real CT batches.

The calibration batches are model inputs built by :func:`pipeline.preprocess.prepare_slices`
from real CT, so activation ranges match what the model sees in production. The quantised
model gets its own sidecar (a copy of the fp32 one with the quantisation recorded in
``extra``), so every engine and the pipeline load it like any other model.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from engines.errors import EngineError
from engines.spec import read_spec, write_spec
from engines.trt_cache import file_sha256


def int8_path(model_path: str | Path) -> Path:
    """Return where the int8 version of ``model_path`` is written (``<stem>-int8.onnx``)."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}-int8.onnx")


class _BatchReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over in-memory batches."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._items = iter([{input_name: np.ascontiguousarray(b, np.float32)} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        raise NotImplementedError


def quantize_int8(
    model_path: str | Path,
    calibration: Iterable[np.ndarray],
    out_path: str | Path | None = None,
    per_channel: bool = True,
    keep_head_fp32: bool = False,
) -> Path:
    """Quantise ``model_path`` to int8 (QDQ, static) and write it with its sidecar.

    Parameters
    ----------
    model_path : str or Path
        The fp32 ``.onnx`` model (sidecar next to it).
    calibration : iterable of ndarray
        ``(n, C, h, w)`` float32 model inputs from real CT (e.g. ``prepare_slices(...).batch``
        split in chunks); at least one.
    out_path : str or Path, optional
        Output model; default :func:`int8_path`.
    per_channel : bool
        Per-channel weight scales (more accurate for convolutions).
    keep_head_fp32 : bool
        Leave the nodes that produce the output (:func:`head_nodes`: the last convolution
        and the sigmoid) in fp32, so the logits near the threshold are not quantised.

    Returns
    -------
    Path
        The written int8 model.

    Raises
    ------
    ValueError
        If no calibration batch is given or one has the wrong channel count.
    EngineError
        If ONNX Runtime's quantisation tools fail.
    """
    spec = read_spec(model_path)
    batches = [np.asarray(b, dtype=np.float32) for b in calibration]
    if not batches:
        raise ValueError("calibration must contain at least one batch, got none")
    for b in batches:
        if b.ndim != 4 or b.shape[1] != spec.in_channels:
            raise ValueError(
                f"calibration batches must be (n, {spec.in_channels}, h, w), got {b.shape}"
            )
    out = Path(out_path) if out_path is not None else int8_path(model_path)
    exclude = head_nodes(model_path) if keep_head_fp32 else []
    _run_quantization(Path(model_path), out, batches, per_channel, exclude)
    extra = dict(spec.extra)
    extra["quantization"] = {
        "format": "QDQ int8 static", "weights": "int8 per-channel" if per_channel else "int8",
        "activations": "uint8", "calibration": "MinMax",
        "calibration_slices": int(sum(b.shape[0] for b in batches)),
        "source_model": Path(model_path).name, "source_sha256": file_sha256(model_path),
        "fp32_nodes": exclude,
    }
    write_spec(dataclasses.replace(spec, extra=extra), out)
    return out


def head_nodes(model_path: str | Path) -> list[str]:
    """Names of the nodes between the graph output and the last convolution (inclusive)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    names, node = [], producers.get(graph.output[0].name)
    while node is not None:
        names.append(node.name)
        if node.op_type == "Conv" or not node.input:
            break
        node = producers.get(node.input[0])
    return names


def _run_quantization(
    source: Path, out: Path, batches: list[np.ndarray], per_channel: bool,
    exclude: list[str],
) -> None:
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:  # pragma: no cover - base dependency
        raise EngineError(f"onnxruntime quantization tools unavailable: {exc}") from exc
    input_name = ort.InferenceSession(
        str(source), providers=["CPUExecutionProvider"]
    ).get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(out), _BatchReader(input_name, batches),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
            )
        except Exception as exc:
            raise EngineError(f"int8 quantisation of {source} failed: {exc}") from exc


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def compare_outputs(
    reference: np.ndarray, candidate: np.ndarray, threshold: float
) -> dict[str, float]:
    """Accuracy delta of ``candidate`` probabilities against ``reference`` ones.

    Parameters
    ----------
    reference, candidate : ndarray
        Probabilities of the same shape (e.g. fp32 and int8 outputs).
    threshold : float
        Probability above which a voxel is lesion (the model's ``spec.threshold``).

    Returns
    -------
    dict
        ``dice`` of the thresholded masks, ``max_abs_diff`` and ``mean_abs_diff`` of the
        probabilities, and ``reference_voxels`` (foreground size of the reference mask).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if reference.shape != candidate.shape:
        raise ValueError(
            f"outputs must have the same shape, got {reference.shape} and {candidate.shape}"
        )
    diff = np.abs(reference.astype(np.float32) - candidate.astype(np.float32))
    ref_mask, cand_mask = reference > threshold, candidate > threshold
    return {
        "dice": dice(ref_mask, cand_mask),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "reference_voxels": int(ref_mask.sum()),
    }
