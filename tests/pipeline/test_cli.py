"""``lungseg segment`` end to end on the demo series, and clear errors on bad input."""

from __future__ import annotations

import json
import shutil

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from pipeline.cli import main


def test_segment_demo_with_threshold_baseline(demo_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(demo_dir), "--out", str(out), "--segmenter", "threshold"]) == 0
    printed = capsys.readouterr().out
    assert "lesion(s); SEG written" in printed and "timings (s)" in printed
    summary = json.loads((out / "lesions.json").read_text())
    assert summary["algorithm"]["name"] == "lungseg threshold baseline"
    assert summary["seg_written"] is True
    stages = {"load", "preprocess", "inference", "postprocess", "measure", "write_seg", "write_sr"}
    assert stages <= set(summary["timings_s"])
    lesions = summary["lesions"]
    assert lesions and all(les["volume_mm3"] > 0 for les in lesions)
    seg = hd.seg.segread(out / "seg.dcm")
    sr = hd.sr.srread(out / "sr.dcm")
    assert len(sr.content.get_planar_roi_measurement_groups()) == len(lesions)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == summary["series_instance_uid"]
    mask_img = sitk.ReadImage(str(out / "mask.nii.gz"))
    mask = sitk.GetArrayFromImage(mask_img)
    assert mask.shape == (32, 512, 512) and int(mask.max()) == len(lesions)
    first = min(demo_dir.glob("*.dcm"), key=lambda p: float(
        pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    ipp = [float(v) for v in pydicom.dcmread(first, stop_before_pixels=True).ImagePositionPatient]
    assert mask_img.GetOrigin() == pytest.approx(ipp)
    assert mask_img.GetSpacing() == pytest.approx((0.703125, 0.703125, 2.5))
    assert np.count_nonzero(mask) == sum(les["voxel_count"] for les in lesions)


def test_model_segmenter_without_model_is_a_clear_error(demo_dir, tmp_path, capsys):
    missing = tmp_path / "none.onnx"
    code = main(["segment", str(demo_dir), "--out", str(tmp_path / "o"),
                 "--segmenter", "model", "--model", str(missing)])
    assert code == 2
    assert "model file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("empty", "holds no DICOM files"),
        ("missing", "DICOM folder not found"),
        ("non_dicom", "not a readable DICOM file"),
        ("mixed", "mixed series"),
        ("too_few", "fewer than 10"),
    ],
)
def test_bad_input_exits_2_with_a_message(make, message, demo_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    if make == "missing":
        folder = tmp_path / "nowhere"
    elif make == "non_dicom":
        (folder / "a.dcm").write_bytes(b"\x00" * 300)
    elif make == "mixed":
        for i, path in enumerate(sorted(demo_dir.glob("*.dcm"))[:12]):
            ds = pydicom.dcmread(path)
            if i % 2:
                ds.SeriesInstanceUID = "1.2.3.4"
            ds.save_as(folder / path.name)
    elif make == "too_few":
        for path in sorted(demo_dir.glob("*.dcm"))[:4]:
            shutil.copy(path, folder / path.name)
    code = main(["segment", str(folder), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("lungseg: error:") and message in err
    assert not (tmp_path / "out" / "seg.dcm").exists()


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["segment"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["segment", "x", "--out", "y", "--segmenter", "magic"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("dtype=fp16", ("dtype", "fp16")), ("channels_last=true", ("channels_last", True)),
     ("threads=2", ("threads", 2)), ("compile=False", ("compile", False))],
)
def test_engine_option_values_are_typed(text, expected):
    from pipeline.cli import parse_option

    assert parse_option(text) == expected


def test_bad_engine_option_is_a_clear_error(demo_dir, tmp_path, capsys):
    assert main(["segment", str(demo_dir), "--out", str(tmp_path), "--segmenter", "model",
                 "--engine-option", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["segment", str(demo_dir), "--out", str(tmp_path), "--segmenter", "model",
                 "--engine-option", "dtype=fp16"]) == 2
    assert "no option(s) ['dtype']" in capsys.readouterr().err


def test_no_shape_gate_flag_keeps_every_shape(demo_dir, tmp_path):
    gated, open_ = tmp_path / "gated", tmp_path / "open"
    assert main(["segment", str(demo_dir), "--out", str(gated)]) == 0
    assert main(["segment", str(demo_dir), "--out", str(open_), "--no-shape-gate"]) == 0
    with_gate = json.loads((gated / "lesions.json").read_text())
    without = json.loads((open_ / "lesions.json").read_text())
    assert without["algorithm"]["version"] == with_gate["algorithm"]["version"] + "+no-shape-gate"
    assert len(without["lesions"]) >= len(with_gate["lesions"])
