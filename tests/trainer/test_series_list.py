"""Series lists: whole series of any source as lesion-free negatives (``negative_list``)."""

import json

import numpy as np
import pytest

from tests.trainer.conftest import DATA, DEMO, REFERENCE, SERIES_0001, write_list, write_mask
from trainer.config import build_config
from trainer.data.cache import build_cache
from trainer.data.negatives import EXCLUDE_MM, read_negative_series
from trainer.data.patches import PatchCache
from trainer.data.series_list import load_listed, read_listed_series, read_series_list


def test_lesion_mask_is_left_out_grown_and_the_rest_of_the_lung_kept(demo_series, tmp_path):
    shape = demo_series.hu.shape
    lesion = np.zeros(shape, dtype=bool)
    lesion[14, 360:370, 310:320] = True
    write_mask(demo_series, lesion, tmp_path / "lesions.nii.gz")
    entries = read_series_list(write_list(tmp_path, [
        {"series": str(DEMO), "lesions": "lesions.nii.gz"},
        {"series": str(DEMO), "lesion_free": True}]))
    assert [e.name for e in entries] == ["series-list-0", "series-list-1"]
    _, masked = read_listed_series(entries[0])
    _, free = read_listed_series(entries[1])
    assert free[14, 365, 315] and not masked[14, 365, 315]
    assert masked.sum() > 0.5 * free.sum()  # most of the lung stays
    assert not (masked & ~free).any()  # nothing outside the lesion-free lung is added
    dy = demo_series.spacing[1]
    step = int(np.ceil(EXCLUDE_MM / dy)) + 2
    left_out = free & ~masked
    ys, xs = np.nonzero(left_out.any(axis=0))
    assert 360 - step <= ys.min() and ys.max() < 370 + step  # only around the lesion
    assert 310 - step <= xs.min() and xs.max() < 320 + step


def test_negative_list_errors_name_the_problem(demo_series, tmp_path):
    cases = [
        ("[]", "non-empty JSON list"),
        ("{", "not valid JSON"),
        (json.dumps([{"lesions": "m.nii.gz"}]), "entry 0: needs an object with a \"series\""),
        (json.dumps([{"series": str(DEMO)}]), "entry 0: give either"),
        (json.dumps([{"series": str(DEMO), "lesion_free": False}]), "give either"),
        (json.dumps([{"series": str(DEMO), "lesion_free": True, "lesions": "m.nii.gz"}]),
         "give either"),
        (json.dumps([{"series": str(DEMO), "lesion_free": True, "reader": 1}]),
         "unknown keys \\['reader'\\]"),
    ]
    path = tmp_path / "list.json"
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_series_list(path)
    with pytest.raises(FileNotFoundError, match="series list not found"):
        read_series_list(tmp_path / "missing.json")
    path.write_text(json.dumps([{"series": str(tmp_path / "nope"), "lesion_free": True}]))
    with pytest.raises(FileNotFoundError, match="series folder not found"):
        read_series_list(path)
    path.write_text(json.dumps([{"series": str(DEMO), "lesions": "absent.nii.gz"}]))
    with pytest.raises(FileNotFoundError, match="lesion mask not found"):
        read_series_list(path)


def test_a_mask_that_does_not_fit_the_series_is_refused(demo_series, tmp_path):
    z, h, w = demo_series.hu.shape
    write_mask(demo_series, np.zeros((z - 1, h, w), dtype=bool), tmp_path / "short.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    for name, message in (("short.nii.gz", "shape"), ("junk.nii.gz", "cannot read")):
        (entry,) = read_series_list(write_list(tmp_path, [{"series": str(DEMO),
                                                              "lesions": name}]))
        with pytest.raises(ValueError, match=f"series-list-0: .*{message}"):
            read_listed_series(entry)


@pytest.mark.slow
def test_cache_takes_listed_series_as_lung_negatives(tiny_vois, tmp_path):
    listed = write_list(tmp_path, [{"series": str(DEMO), "lesion_free": True}])
    cfg = build_config({"vois_dir": str(tiny_vois), "negative_list": listed,
                        "cache": str(tmp_path / "cache.npz")})
    cache = PatchCache(build_cache(cfg))
    (index,) = [i for i, m in enumerate(cache.meta) if m["name"] == "series-list-0"]
    assert cache.meta[index]["negative"] and cache.meta[index]["lung"]
    assert len(cache.lung_centres()) > 0


@pytest.mark.slow
def test_readers_mask_leaves_out_what_their_contours_leave_out_in_lidc_0001(tmp_path):
    """On real data the list path, given the readers' contour mask, allows no window that
    the reader-XML path refuses; it allows more, as the XML's point marks (small nodules,
    non-nodules) are not in the contour mask."""
    xmls = sorted(SERIES_0001.glob("*/*/*.xml"))
    count = REFERENCE / "LIDC-IDRI-0001_reader_count.nii.gz"
    if not xmls or not count.is_file():
        pytest.skip(f"LIDC-IDRI-0001 series or reference masks not available under {SERIES_0001}")
    folder = xmls[0].parent
    (entry,) = read_series_list(write_list(tmp_path, [{"series": str(folder),
                                                          "lesions": str(count)}]))
    _, listed = read_listed_series(entry)
    _, from_xml = read_negative_series(folder)
    assert from_xml.any() and not (from_xml & ~listed).any()
    assert from_xml.sum() < listed.sum() < 1.5 * from_xml.sum()


@pytest.fixture(scope="module")
def own_seg(tmp_path_factory):
    """lungseg's own output on the demo series (the shipped model): seg.dcm and mask.nii.gz."""
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("lungseg")
    assert main(["segment", str(DEMO), "--out", str(out)]) == 0
    return out


def test_lungsegs_own_seg_reads_as_its_mask(demo_series, own_seg, tmp_path):
    (entry,) = read_series_list(write_list(tmp_path, [
        {"series": str(DEMO), "lesions": str(own_seg / "seg.dcm")}]))
    lesions = load_listed(entry)[1]
    from trainer.data.datasets import read_reference_mask

    expected = read_reference_mask(own_seg / "mask.nii.gz", demo_series.z_positions_mm,
                                   demo_series.hu.shape)
    assert expected.any() and np.array_equal(lesions, expected)


def test_a_readers_dcmqi_seg_of_lidc_0001_fits_the_demo_series(demo_series, own_seg, tmp_path):
    seg = DATA / "dicom-reference" / "lidc-0001-seg-qiicr" / "dcm_segmentation"
    if not (seg / "nodule_01_annotation_0.dcm").is_file():
        pytest.skip(f"reference SEG not available under {seg}")
    (entry,) = read_series_list(write_list(tmp_path, [
        {"series": str(DEMO), "lesions": str(seg / "nodule_01_annotation_0.dcm")}]))
    reader = load_listed(entry)[1]
    numbers = [int(demo_series.datasets[k].InstanceNumber)
               for k in np.nonzero(reader.any(axis=(1, 2)))[0]]
    assert sorted(numbers) == list(range(39, 48))  # the nodule's slices (shared data README)
    model = load_listed(read_series_list(write_list(tmp_path, [
        {"series": str(DEMO), "lesions": str(own_seg / "seg.dcm")}]))[0])[1]
    assert 2 * (reader & model).sum() / (reader.sum() + model.sum()) > 0.8


def test_a_seg_of_another_series_or_a_ct_image_is_refused(tmp_path):
    other = DATA / "dicom-reference" / "highdicom" / "data" / "test_files"
    ct_slice = next(DEMO.glob("*.dcm"))
    cases = [(ct_slice, "neither NIfTI .* nor a readable DICOM-SEG")]
    if (other / "seg_image_ct_binary.dcm").is_file():
        cases.append((other / "seg_image_ct_binary.dcm", "4 of its 4 source images outside"))
    for path, message in cases:
        (entry,) = read_series_list(write_list(tmp_path, [{"series": str(DEMO),
                                                           "lesions": str(path)}]))
        with pytest.raises(ValueError, match=f"series-list-0: .*{message}"):
            load_listed(entry)
