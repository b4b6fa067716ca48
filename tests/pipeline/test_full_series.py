"""The whole 133-slice LIDC-IDRI-0001 series from ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.cli import label_image
from pipeline.run import PipelineConfig, Segmenter, process_series

from .conftest import CONSENSUS


@pytest.fixture(scope="module")
def full_result(full_dir):
    config = PipelineConfig(segmenter="threshold")
    return process_series(full_dir, Segmenter.create(config), config)


def reference_on_series_grid(result) -> np.ndarray:
    """Resample the >= 2-reader consensus mask onto the series grid in patient space."""
    if not CONSENSUS.is_file():
        pytest.skip(f"reference mask not present: {CONSENSUS}")
    reference = sitk.ReadImage(str(CONSENSUS))
    grid = label_image(result.mask, result.series)
    resampled = sitk.Resample(
        reference, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, reference.GetPixelID()
    )
    return sitk.GetArrayFromImage(resampled) > 0


@pytest.mark.slow
def test_baseline_lesion_overlaps_the_consensus_nodule(full_result):
    result = full_result
    assert result.series.hu.shape == (133, 512, 512)
    truth = reference_on_series_grid(result)
    assert truth.sum() > 1000
    hits = np.unique(result.mask[truth])
    hits = hits[hits > 0]
    assert hits.size >= 1
    lesion = result.mask == hits[0]
    dice = 2 * (lesion & truth).sum() / (lesion.sum() + truth.sum())
    print(f"LIDC-IDRI-0001 threshold baseline: lesion {int(hits[0])} of "
          f"{len(result.lesions)}, Dice vs >=2-reader consensus {dice:.3f}")
    assert dice > 0.5
    assert set(result.timings) >= {"load", "preprocess", "inference", "write_seg", "write_sr"}


@pytest.mark.slow
def test_full_series_seg_references_all_133_instances(full_result):
    seg = full_result.seg
    refs = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert len(refs) == 133
    assert {r.ReferencedSOPInstanceUID for r in refs} == set(full_result.series.sop_instance_uids)


@pytest.mark.slow
def test_seg_matches_the_dcmqi_seg_of_the_same_nodule(full_result, tmp_path):
    import highdicom as hd

    from .conftest import SHARED

    path = SHARED / "dicom-reference" / "lidc-0001-seg-qiicr" / "dcm_segmentation"
    path = path / "nodule_01_annotation_0.dcm"
    if not path.is_file():
        pytest.skip(f"dcmqi reference SEG not present: {path}")
    full_result.seg.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    ours = hd.seg.segread(tmp_path / "seg.dcm")
    theirs = hd.seg.segread(path)
    assert ours.Rows == theirs.Rows and ours.Columns == theirs.Columns
    assert ours.FrameOfReferenceUID == theirs.FrameOfReferenceUID
    their_refs = [r.ReferencedSOPInstanceUID
                  for r in theirs.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    our_refs = {r.ReferencedSOPInstanceUID
                for r in ours.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert set(their_refs) <= our_refs

    def positions(seg):
        out = {}
        for frame in seg.PerFrameFunctionalGroupsSequence:
            src = frame.DerivationImageSequence[0].SourceImageSequence[0]
            pos = frame.PlanePositionSequence[0].ImagePositionPatient
            out[src.ReferencedSOPInstanceUID] = [float(v) for v in pos]
        return out

    ours_pos, theirs_pos = positions(ours), positions(theirs)
    shared = set(ours_pos) & set(theirs_pos)
    assert len(shared) >= 5
    for uid in shared:
        assert ours_pos[uid] == pytest.approx(theirs_pos[uid])
    kwargs = {"segment_numbers": [1], "combine_segments": False}
    a = ours.get_pixels_by_source_instance(their_refs, **kwargs)[..., 0] > 0
    # dcmqi does not state SpatialLocationsPreserved; the positions were compared above.
    b = theirs.get_pixels_by_source_instance(
        their_refs, ignore_spatial_locations=True, **kwargs
    )[..., 0] > 0
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    print(f"overlap with the dcmqi SEG (reader annotation 0) on its {len(their_refs)} slices: "
          f"Dice {dice:.3f}")
    assert dice > 0.5
