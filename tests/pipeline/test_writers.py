"""SEG and SR written for the demo series, read back with highdicom and checked field by field."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from pipeline.seg_writer import SEGMENT_COLOR_LAB, Algorithm, write_seg
from pipeline.sr_writer import tracking_uid, write_sr
from pipeline.version import __version__


@pytest.fixture(scope="module")
def written(demo_result, tmp_path_factory):
    out = tmp_path_factory.mktemp("writers")
    demo_result.seg.save_as(out / "seg.dcm", enforce_file_format=True)
    demo_result.sr.save_as(out / "sr.dcm", enforce_file_format=True)
    return out


def test_seg_reads_back_aligned_with_the_source(written, demo_result, demo_series):
    seg = hd.seg.segread(written / "seg.dcm")
    assert seg.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert seg.SegmentationType == "BINARY"
    assert seg.Modality == "SEG"
    assert seg.StudyInstanceUID == demo_series.study_instance_uid
    assert seg.FrameOfReferenceUID == demo_series.frame_of_reference_uid
    assert seg.Manufacturer == "lungseg"
    assert seg.SoftwareVersions == __version__
    assert "RESEARCH USE ONLY" in seg.SeriesDescription
    assert seg.Rows == 512 and seg.Columns == 512
    (ref_series,) = seg.ReferencedSeriesSequence
    assert ref_series.SeriesInstanceUID == demo_series.series_instance_uid
    referenced = {i.ReferencedSOPInstanceUID for i in ref_series.ReferencedInstanceSequence}
    assert referenced == set(demo_series.sop_instance_uids)
    source_by_uid = {ds.SOPInstanceUID: ds for ds in demo_series.datasets}
    expected = (demo_result.mask > 0)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (derivation,) = frame.DerivationImageSequence
        (src,) = derivation.SourceImageSequence
        ds = source_by_uid[src.ReferencedSOPInstanceUID]
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert [float(v) for v in position] == pytest.approx(
            [float(v) for v in ds.ImagePositionPatient]
        )
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=demo_series.sop_instance_uids, segment_numbers=[1],
        combine_segments=False, assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(pixels[..., 0] > 0, expected)


def test_seg_segment_description(written, demo_result):
    seg = hd.seg.segread(written / "seg.dcm")
    assert seg.number_of_segments == 1
    desc = seg.get_segment_description(1)
    assert desc.segment_label == "Lung lesion"
    assert desc.segmented_property_category == codes.SCT.MorphologicallyAbnormalStructure
    assert desc.segmented_property_type == codes.SCT.Nodule
    assert desc.anatomic_regions[0] == codes.SCT.Lung
    assert desc.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    algo = desc.algorithm_identification[0]
    assert algo.AlgorithmName == "lungseg threshold baseline"
    assert algo.AlgorithmVersion == demo_result.algorithm.version
    assert algo.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
    lab = desc.RecommendedDisplayCIELabValue
    expected = hd.color.CIELabColor(*SEGMENT_COLOR_LAB).value
    assert list(lab) == list(expected)


def test_sr_reads_back_with_one_group_per_lesion(written, demo_result, demo_series):
    sr = hd.sr.srread(written / "sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert sr.StudyInstanceUID == demo_series.study_instance_uid
    assert "RESEARCH USE ONLY" in sr.SeriesDescription
    assert sr.CompletionFlag == "COMPLETE"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = {
        i.ReferencedSOPInstanceUID
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert evidence == set(demo_series.sop_instance_uids)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == len(demo_result.lesions) > 0
    algorithm = demo_result.algorithm
    for group, lesion in zip(groups, demo_result.lesions, strict=True):
        assert group.tracking_identifier == f"Lesion {lesion.label}"
        assert group.tracking_uid == tracking_uid(demo_series, algorithm, lesion)
        roi = group.roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        assert roi.value == pytest.approx(np.asarray(lesion.contour))
        key_uid = demo_series.sop_instance_uids[lesion.key_slice]
        (selected_from,) = roi.ContentSequence
        assert selected_from.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == key_uid
        values = {(m.name.meaning, m.derivation.meaning if m.derivation else None): m.value
                  for m in group.get_measurements()}
        assert values[("Long Axis", None)] == pytest.approx(lesion.long_axis_mm, abs=1e-3)
        assert values[("Short Axis", None)] == pytest.approx(lesion.short_axis_mm, abs=1e-3)
        assert values[("Volume", None)] == pytest.approx(lesion.volume_mm3, abs=1e-3)
        mean_hu = values[("Attenuation Coefficient", "Mean")]
        assert mean_hu == pytest.approx(lesion.mean_hu, abs=1e-3)
        necrotic = values[("Fraction of lesion voxels from -10 to 40 HU", None)]
        assert necrotic == pytest.approx(100 * lesion.necrotic_fraction, abs=1e-3)
        assert group.finding_type == codes.SCT.Nodule


def _referenced_uids(item) -> set[str]:
    uids = {r.ReferencedSOPInstanceUID for r in item.get("ReferencedSOPSequence", [])}
    for child in item.get("ContentSequence", []):
        uids |= _referenced_uids(child)
    return uids


def test_sr_image_library_and_no_group_without_scoord(written, demo_result, demo_series):
    sr = hd.sr.srread(written / "sr.dcm")
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    assert sr.content.get_image_measurement_groups() == []
    (library,) = [
        item for item in sr.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "111028"
    ]
    key_uids = {demo_series.sop_instance_uids[les.key_slice] for les in demo_result.lesions}
    assert _referenced_uids(library) == key_uids
    (observer,) = [
        item for item in sr.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "121013"
    ]
    assert observer.TextValue == "lungseg threshold baseline"


def test_zero_lesions_gives_no_seg_and_an_sr_with_zero_count(demo_series, tmp_path):
    algorithm = Algorithm("lungseg threshold baseline", "test")
    empty = np.zeros(demo_series.hu.shape, dtype=np.uint16)
    assert write_seg(demo_series, empty, algorithm) is None
    write_sr(demo_series, [], algorithm).save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    sr = hd.sr.srread(tmp_path / "sr.dcm")
    assert sr.content.get_planar_roi_measurement_groups() == []
    (group,) = sr.content.get_image_measurement_groups()
    assert group.tracking_identifier == "No lesion detected"
    (count,) = group.get_measurements()
    assert count.name.value == "LESION-COUNT" and count.value == 0


def test_output_uids_are_deterministic(demo_series, demo_result):
    algorithm = demo_result.algorithm
    again = write_seg(demo_series, demo_result.mask, algorithm)
    assert again.SOPInstanceUID == demo_result.seg.SOPInstanceUID
    assert again.SeriesInstanceUID == demo_result.seg.SeriesInstanceUID
    other = write_seg(demo_series, demo_result.mask, Algorithm(algorithm.name, "other"))
    assert other.SeriesInstanceUID != demo_result.seg.SeriesInstanceUID
    sr_again = write_sr(demo_series, demo_result.lesions, algorithm)
    assert sr_again.SOPInstanceUID == demo_result.sr.SOPInstanceUID
    assert sr_again.SeriesInstanceUID not in (demo_result.seg.SeriesInstanceUID,)
    with pytest.raises(ValueError, match="labels shape"):
        write_seg(demo_series, demo_result.mask[1:], algorithm)


@pytest.mark.parametrize("name", ["seg.dcm", "sr.dcm"])
def test_dciodvfy_reports_no_errors(written, name):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    run = subprocess.run(["dciodvfy", str(written / name)], capture_output=True, text=True)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == []
    assert any(line.strip() in ("Segmentation", "Comprehensive3DSR") for line in lines)
