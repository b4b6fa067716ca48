"""Lesion-free windows from whole LIDC series: reader marks, their exclusion, the sampler."""

import numpy as np
import pytest

from tests.trainer.conftest import REFERENCE, REPO, SERIES_0001
from trainer.config import build_config
from trainer.data.cache import _save
from trainer.data.lidc import read_all_marks
from trainer.data.negatives import EXCLUDE_MM, marks_box_mask, read_negative_series
from trainer.data.patches import PatchCache, PatchSampler

XML = """<?xml version="1.0"?>
<LidcReadMessage xmlns="http://www.nih.gov">
 <readingSession>
  <unblindedReadNodule><noduleID>1</noduleID>
   <roi><imageZposition>-10.0</imageZposition><imageSOP_UID>1.2.3</imageSOP_UID>
    <inclusion>TRUE</inclusion>
    <edgeMap><xCoord>5</xCoord><yCoord>6</yCoord></edgeMap>
    <edgeMap><xCoord>8</xCoord><yCoord>9</yCoord></edgeMap></roi>
  </unblindedReadNodule>
  <unblindedReadNodule><noduleID>small</noduleID>
   <roi><imageZposition>-7.5</imageZposition><imageSOP_UID>9.9.9</imageSOP_UID>
    <inclusion>TRUE</inclusion><edgeMap><xCoord>2</xCoord><yCoord>3</yCoord></edgeMap></roi>
  </unblindedReadNodule>
  <nonNodule><nonNoduleID>n1</nonNoduleID><imageZposition>-5.0</imageZposition>
   <imageSOP_UID>1.2.5</imageSOP_UID><locus><xCoord>12</xCoord><yCoord>1</yCoord></locus>
  </nonNodule>
  <nonNodule><nonNoduleID>n2</nonNoduleID><imageZposition>40.0</imageZposition>
   <imageSOP_UID>7.7.7</imageSOP_UID><locus><xCoord>1</xCoord><yCoord>1</yCoord></locus>
  </nonNodule>
 </readingSession>
</LidcReadMessage>
"""


def test_every_mark_is_read_and_boxed_on_its_slice(tmp_path):
    path = tmp_path / "read.xml"
    path.write_text(XML)
    marks = read_all_marks(path)
    assert [m.points.tolist() for m in marks] == [[[5, 6], [8, 9]], [[2, 3]], [[12, 1]], [[1, 1]]]
    z = np.array([-10.0, -7.5, -5.0])
    boxed = marks_box_mask(marks, ["1.2.3", "1.2.4", "1.2.5"], z, (3, 12, 16))
    expected = np.zeros((3, 12, 16), dtype=bool)
    expected[0, 6:10, 5:9] = True  # contour box, slice by UID
    expected[1, 3, 2] = True  # small nodule: UID unknown, slice by z position
    expected[2, 1, 12] = True  # non-nodule locus
    assert np.array_equal(boxed, expected)  # the mark at z = 40 mm is on no slice


def test_marks_reject_malformed_xml(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(XML.replace("<xCoord>12</xCoord>", "<xCoord>twelve</xCoord>"))
    with pytest.raises(ValueError, match="malformed LIDC XML"):
        read_all_marks(bad)
    with pytest.raises(ValueError, match="readingSession"):
        (tmp_path / "other.xml").write_text("<a/>")
        read_all_marks(tmp_path / "other.xml")


def test_series_without_reader_xml_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_negative_series(tmp_path / "absent")
    with pytest.raises(ValueError, match="found 0"):
        read_negative_series(REPO / "demo" / "LIDC-IDRI-0001")  # DICOM, no reader XML


def test_negative_windows_are_centred_on_allowed_pixels_and_labelled_zero(tmp_path):
    crop = np.full((1, 3, 8, 8), 50, np.uint8)
    slices = np.zeros((2, 3, 20, 20), np.uint8)
    slices[1, :, 12, 7] = 200
    centres = np.zeros((2, 20, 20), np.uint8)
    centres[1, 12, 7] = 1
    meta = [{"name": "c", "patient": "p", "texture": "solid", "diameter_mm": 5.0,
             "negative": False},
            {"name": "s", "patient": "s", "texture": "none", "diameter_mm": 0.0,
             "negative": True}]
    path = _save([crop, slices], [np.ones((1, 8, 8), np.uint8), centres], meta,
                 build_config({}), tmp_path / "cache.npz")
    cache = PatchCache(path)
    x, y = PatchSampler(cache, cache.entries(), patch=16, seed=0).sample(20, 1.0)
    assert np.allclose(x[:, :, 8, 8], 200 / 255.0, atol=1 / 255.0)
    assert x[:, :, :8, :].max() < 1 / 255.0 + 1e-6 and not y.any()


def test_no_centre_of_0001_lies_near_any_reader_voxel():
    xmls = sorted(SERIES_0001.glob("*/*/*.xml"))
    count = REFERENCE / "LIDC-IDRI-0001_reader_count.nii.gz"
    if not xmls or not count.is_file():
        pytest.skip(f"LIDC-IDRI-0001 series or reference masks not available under {SERIES_0001}")
    from trainer.evaluation.evaluate import read_reference_mask

    series, centres = read_negative_series(xmls[0].parent)
    marked = read_reference_mask(count, series.z_positions_mm, series.hu.shape)
    assert centres.any() and marked.any()
    near = np.argwhere(marked)
    for k, (zc, yc, xc) in enumerate(np.argwhere(centres)[::997]):
        gap = np.abs(near - (zc, yc, xc)) * np.array(series.spacing)
        assert gap.max(axis=1).min() > EXCLUDE_MM, f"centre {k} within {EXCLUDE_MM} mm of a mark"


def test_cache_adds_the_lung_of_a_whole_series_as_negatives(tiny_vois, tmp_path):
    xmls = sorted(SERIES_0001.glob("*/*/*.xml"))
    if not xmls:
        pytest.skip(f"LIDC-IDRI-0001 series not available under {SERIES_0001}")
    from trainer.data.cache import build_cache

    cfg = build_config({"vois_dir": str(tiny_vois), "cache": str(tmp_path / "c.npz"),
                        "negative_series": str(xmls[0].parent)})
    cache = PatchCache(build_cache(cfg))
    series_entry = cache.entries(negative=True)[-1]
    assert cache.meta[series_entry]["name"] == xmls[0].parent.name
    img, centres = cache.images[series_entry], cache.labels[series_entry]
    assert img.shape[0] == 133 and img.shape[1] == 3
    assert 0.02 < centres.mean() < 0.5
    assert cache.meta[series_entry]["lung"]
    assert not any(cache.meta[i]["lung"] for i in cache.entries(negative=True)[:-1])
    assert set(cache.lung_centres()[:, 0]) == {series_entry}


def test_cache_refuses_a_series_without_reader_xml_before_reading_crops(tiny_vois, tmp_path):
    from trainer.data.cache import build_cache

    cfg = build_config({"vois_dir": str(tiny_vois), "cache": str(tmp_path / "c.npz"),
                        "negative_series": f"{REPO / 'demo' / 'LIDC-IDRI-0001'}, "})
    with pytest.raises(ValueError, match="expected one LIDC reader XML, found 0"):
        build_cache(cfg)
    assert not (tmp_path / "c.npz").exists()
