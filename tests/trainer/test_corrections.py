"""Which archive SEG is a reader's correction (trainer/retrain/corrections.py)."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from pipeline.uids import derived_uid
from trainer.retrain.corrections import correction_reason, is_lungseg_own, newest, seg_info

SOURCE = "1.2.3.4"


def seg(manufacturer="lungseg", algorithm="AUTOMATIC", version="2.0", series_uid=None,
        label="Lung lesion", creator="", date="20240105", time="101010.5"):
    ds = Dataset()
    ds.Modality, ds.Manufacturer = "SEG", manufacturer
    ds.StudyInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.9"
    ds.SeriesInstanceUID = series_uid or derived_uid(SOURCE, version, "seg", "series")
    ref = Dataset()
    ref.SeriesInstanceUID = SOURCE
    ds.ReferencedSeriesSequence = [ref]
    segment, algo = Dataset(), Dataset()
    algo.AlgorithmVersion = version
    segment.SegmentAlgorithmType, segment.SegmentLabel = algorithm, label
    segment.SegmentationAlgorithmIdentificationSequence = [algo]
    ds.SegmentSequence = [segment]
    if creator:
        ds.ContentCreatorName = creator
    ds.ContentDate, ds.ContentTime = date, time
    return ds


def test_lungseg_own_output_is_not_a_correction():
    info = seg_info(seg())
    assert is_lungseg_own(info)
    assert correction_reason(info, None) is None


@pytest.mark.parametrize("ds, words", [
    (seg(manufacturer="OHIF", series_uid="1.9"), "OHIF"),
    (seg(algorithm="MANUAL", series_uid="1.9"), "MANUAL"),
    (seg(algorithm="SEMIAUTOMATIC", series_uid="1.9"), "SEMIAUTOMATIC"),
    (seg(creator="Reader^A", series_uid="1.9"), "ContentCreatorName"),
])
def test_reader_made_segs_are_corrections(ds, words):
    assert words in correction_reason(seg_info(ds), False)


def test_lungseg_like_copy_counts_only_when_its_pixels_differ():
    info = seg_info(seg(series_uid="1.9"))
    assert not is_lungseg_own(info)
    assert correction_reason(info, differs_from_own=False) is None
    assert "differ" in correction_reason(info, differs_from_own=True)
    assert correction_reason(info, differs_from_own=None) is not None


@pytest.mark.parametrize("label, free", [("No lesion", True), (" no LESIONS ", True),
                                         ("Lesion free", True), ("Lesion", False)])
def test_no_lesion_label(label, free):
    assert seg_info(seg(manufacturer="OHIF", label=label)).no_lesion is free


def test_newest_by_content_time_then_uid():
    a = seg_info(seg(date="20240101", time="235959"))
    b = seg_info(seg(date="20240102", time="000001"))
    assert newest([a, b]) is b and b.when == "20240102000001" and b.date == "20240102"
    with pytest.raises(ValueError, match="no SEG"):
        newest([])


def test_bad_segs_are_refused_by_name():
    ct = seg()
    ct.Modality = "CT"
    with pytest.raises(ValueError, match="not a SEG"):
        seg_info(ct)
    two = seg()
    other = Dataset()
    other.SeriesInstanceUID = "9.9"
    two.ReferencedSeriesSequence.append(other)
    with pytest.raises(ValueError, match="2 series"):
        seg_info(two)
