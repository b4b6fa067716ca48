"""Awkward inputs made from the real demo CT: compressed transfer syntaxes read to the same HU,
missing rescale refused or (when the values prove to be HU) read with a warning, clear reasons
for multi-frame CT and two acquisitions in one series."""

from __future__ import annotations

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import input_variants as variants  # noqa: E402

from pipeline.errors import SeriesRejected  # noqa: E402
from pipeline.series import load_series_dir  # noqa: E402
from pipeline.sr_writer import HU_WITHOUT_RESCALE, INPUT_QUALITY, write_sr  # noqa: E402
from pipeline.transfer_syntax import undecodable_reason  # noqa: E402

SYNTAXES = [uid.JPEGLosslessSV1, uid.JPEGLossless, uid.JPEGLSLossless, uid.JPEG2000Lossless,
            uid.RLELossless, uid.DeflatedExplicitVRLittleEndian]


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda s: s.name.split(" (")[0])
def test_compressed_series_reads_to_the_same_hu(syntax, demo_dir, demo_series, tmp_path):
    folder = variants.compressed(demo_dir, tmp_path / "series", syntax)
    stored = {pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID
              for p in folder.glob("*.dcm")}
    assert stored == {syntax}
    series = load_series_dir(folder)
    np.testing.assert_array_equal(series.hu, demo_series.hu)
    assert series.spacing == demo_series.spacing
    assert series.warnings == [] and not series.rescale_missing


def test_undecodable_syntax_is_refused_with_uid_and_name(demo_dir, tmp_path):
    folder = variants.compressed(demo_dir, tmp_path / "series", uid.JPEG2000Lossless)
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
        ds.save_as(path)
    with pytest.raises(SeriesRejected) as info:
        load_series_dir(folder)
    message = str(info.value)
    assert "1.2.840.10008.1.2.4.100 (MPEG2 Main Profile / Main Level)" in message
    assert "cannot be decoded" in message and "32 of 32 instances" in message


def test_every_syntax_a_ct_archive_uses_has_a_decoder():
    for syntax in (*SYNTAXES, uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian,
                   uid.ExplicitVRBigEndian, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit,
                   uid.JPEGLSNearLossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2K):
        assert undecodable_reason(syntax) is None, syntax.name
    assert "unknown to pydicom" in undecodable_reason(uid.UID("1.2.3.4"))


def test_missing_rescale_with_stored_offset_is_refused(demo_dir, tmp_path):
    folder = variants.without_rescale(demo_dir, tmp_path / "series", store_hu=False)
    assert "RescaleIntercept" not in pydicom.dcmread(next(folder.glob("*.dcm")))
    with pytest.raises(SeriesRejected,
                       match="RescaleSlope/RescaleIntercept missing and the stored values are "
                             "not HU: .* above 400"):
        load_series_dir(folder)


def test_missing_rescale_with_hu_stored_is_read_with_a_warning(demo_dir, demo_series, tmp_path):
    folder = variants.without_rescale(demo_dir, tmp_path / "series", store_hu=True)
    series = load_series_dir(folder)
    np.testing.assert_array_equal(series.hu, demo_series.hu)
    assert series.rescale_missing
    (warning,) = series.warnings
    assert warning.startswith("RescaleSlope/RescaleIntercept missing: the stored values were "
                              "used as HU")


def test_sr_of_a_series_without_rescale_carries_the_warning(demo_dir, tmp_path):
    from pipeline.seg_writer import Algorithm

    series = load_series_dir(variants.without_rescale(demo_dir, tmp_path / "s", store_hu=True))
    sr = write_sr(series, [], Algorithm("lungseg test", "1"))
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    back = hd.sr.srread(tmp_path / "sr.dcm")
    assert back.SeriesDescription.endswith("HU assumed, no rescale")
    assert len(back.SeriesDescription) <= 64
    (group,) = back.content.get_image_measurement_groups()
    evaluations = group.get_qualitative_evaluations()
    assert [(e.name, e.value) for e in evaluations] == [(INPUT_QUALITY, HU_WITHOUT_RESCALE)]


def test_rescale_present_but_values_not_hu_is_refused(demo_dir, tmp_path):
    folder = variants.without_rescale(demo_dir, tmp_path / "series", store_hu=False)
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.save_as(path)
    with pytest.raises(SeriesRejected, match="implausible HU values after RescaleSlope"):
        load_series_dir(folder)


def test_multi_frame_ct_is_named(demo_dir, tmp_path):
    folder = variants.multi_frame(demo_dir, tmp_path / "series")
    with pytest.raises(SeriesRejected,
                       match="multi-frame CT is not supported: Legacy Converted Enhanced CT "
                             "Image Storage, 32 frames"):
        load_series_dir(folder)


def test_two_interleaved_acquisitions_are_named(demo_dir, tmp_path):
    folder = variants.interleaved_acquisitions(demo_dir, tmp_path / "series")
    with pytest.raises(SeriesRejected,
                       match="two acquisitions in one series: AcquisitionNumber 1 and 2"):
        load_series_dir(folder)


def test_consecutive_acquisitions_are_one_volume(demo_dir, demo_series, tmp_path):
    datasets = variants.renew_uids(variants.read_series(demo_dir))
    for k, ds in enumerate(datasets):
        ds.AcquisitionNumber = 1 if k < 16 else 2
    series = load_series_dir(variants.write(datasets, tmp_path / "series"))
    np.testing.assert_array_equal(series.hu, demo_series.hu)
