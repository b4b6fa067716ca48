"""Segmenter selection and the model path of process_series with a small real ONNX model."""

from __future__ import annotations

import dataclasses

import highdicom as hd
import numpy as np
import pytest

from engines.spec import ModelSpec, read_spec, write_spec
from pipeline.errors import ConfigError, SeriesRejected
from pipeline.lungs import dilate
from pipeline.run import PipelineConfig, Segmenter, process_series


def dense_tissue_model(path) -> None:
    """Write an ONNX model: probability = sigmoid(40 * (centre channel - 0.5)), with sidecar.

    With the HU window (-1000, 400) the centre channel is 0.5 at -300 HU, so the model marks
    soft tissue; it stands in for a trained network to exercise the engine path.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("Sub", ["centre", "half"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "gain"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["prob"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [1]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [2]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [40.0]),
    ]
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 1, "h", "w"])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    write_spec(ModelSpec(
        name="dense-tissue test model", version="test-1", architecture="sigmoid of a channel",
        slice_offsets_mm=(-2.5, 0.0, 2.5), pixel_spacing_mm=1.0, hu_window=(-1000.0, 400.0),
        size_multiple=16, threshold=0.5, min_lesion_volume_mm3=30.0,
    ), path)


@pytest.mark.parametrize("segmenter", ["auto", "model"])
def test_missing_model_fails_unless_a_baseline_is_asked_for(tmp_path, segmenter):
    missing = str(tmp_path / "none.onnx")
    with pytest.raises(ConfigError, match=f"model file not found: .*none.onnx.*{segmenter}"):
        Segmenter.create(PipelineConfig(segmenter=segmenter, model_path=missing))
    seg = Segmenter.create(PipelineConfig(segmenter="threshold", model_path=missing))
    assert seg.kind == "threshold" and seg.name == "lungseg threshold baseline"


def test_model_segmenter_runs_the_engine_over_the_demo(tmp_path, demo_series, demo_dir):
    path = tmp_path / "model.onnx"
    dense_tissue_model(path)
    config = PipelineConfig(segmenter="model", model_path=str(path), threads=1, batch_size=4)
    segmenter = Segmenter.create(config)
    assert segmenter.kind == "model" and segmenter.name == "lungseg dense-tissue test model"
    calls = []
    infer = segmenter.engine.infer
    segmenter.engine.infer = lambda batch: calls.append(batch.shape) or infer(batch)
    try:
        result = process_series(demo_series, segmenter, config)
    finally:
        segmenter.close()
    assert calls and max(c[0] for c in calls) <= 4 and all(c[1] == 3 for c in calls)
    lungs = segmenter.lungs(demo_series)
    for label in range(1, int(result.mask.max()) + 1):
        assert lungs[result.mask == label].mean() >= 0.5  # lesions lie mostly in the lungs
    algo = result.seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "lungseg dense-tissue test model"
    assert algo.AlgorithmVersion == "test-1"
    result.sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    groups = hd.sr.srread(tmp_path / "sr.dcm").content.get_planar_roi_measurement_groups()
    assert len(groups) == len(result.lesions) == int(result.mask.max())
    assert all(les.volume_mm3 >= 30.0 for les in result.lesions)
    # The lung gate keeps the body wall out although the model marks all soft tissue.
    assert not result.mask[:, 20, :].any()
    assert not result.mask[~dilate(lungs, demo_series.spacing, 5.0)].any()
    assert np.all(np.isin(np.unique(result.mask), np.arange(len(result.lesions) + 1)))


def test_shipped_model_name_is_not_prefixed_twice(tmp_path):
    path = tmp_path / "lungseg-unet.onnx"
    dense_tissue_model(path)
    spec = ModelSpec.from_json({**read_spec(path).to_json(), "name": "lungseg-unet"})
    write_spec(spec, path)
    segmenter = Segmenter.create(PipelineConfig(segmenter="model", model_path=str(path)))
    try:
        assert segmenter.name == "lungseg-unet"
        assert segmenter.version == "test-1"
    finally:
        segmenter.close()


def test_config_validation_and_small_series(demo_series):
    with pytest.raises(ConfigError, match="segmenter must be one of"):
        PipelineConfig(segmenter="unet")
    with pytest.raises(ConfigError, match="threads"):
        PipelineConfig(threads=0)
    with pytest.raises(ConfigError, match="batch_size"):
        PipelineConfig(batch_size=0)
    config = PipelineConfig(segmenter="threshold", min_slices=40)
    with pytest.raises(SeriesRejected, match="32 slices, fewer than 40"):
        process_series(demo_series, Segmenter.create(config), config)
    with pytest.raises(ValueError, match="kind"):
        Segmenter("unet")
    with pytest.raises(ValueError, match="engine is required"):
        Segmenter("model")


def test_sidecar_shape_limits_gate_the_lesions(tmp_path, demo_series):
    path = tmp_path / "model.onnx"
    dense_tissue_model(path)
    counts = {}
    for name, limits in (("none", {}), ("loose", {"max_flatness": 1e6}),
                         ("strict", {"min_roundness": 0.999})):
        write_spec(dataclasses.replace(read_spec(path), shape_limits=limits), path)
        config = PipelineConfig(segmenter="model", model_path=str(path), threads=1)
        segmenter = Segmenter.create(config)
        try:
            assert segmenter.shape_limits == limits
            counts[name] = len(process_series(demo_series, segmenter, config).lesions)
        finally:
            segmenter.close()
    assert counts["none"] == counts["loose"] >= 1
    assert counts["strict"] == 0  # no voxelised component is a perfect ball
    config = PipelineConfig(segmenter="model", model_path=str(path), threads=1,
                            shape_gate=False)  # the strict limits are still in the sidecar
    segmenter = Segmenter.create(config)
    try:
        assert segmenter.shape_limits == {} and segmenter.version == "test-1+no-shape-gate"
        result = process_series(demo_series, segmenter, config)
    finally:
        segmenter.close()
    assert len(result.lesions) == counts["none"]
    algo = result.seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmVersion == "test-1+no-shape-gate"
