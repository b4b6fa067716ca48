"""benchmarks.load without Orthanc: the copies and the table."""

from pathlib import Path

import pydicom
import pytest

from benchmarks.load import SeriesCopy, make_copies, report, summary

DEMO = Path(__file__).resolve().parents[2] / "demo" / "LIDC-IDRI-0001"


def test_copies_are_distinct_series_with_the_same_pixels(tmp_path):
    if not DEMO.exists():
        pytest.skip("demo/LIDC-IDRI-0001 absent")
    a, b = make_copies(DEMO, tmp_path, 2)
    assert len({a.study_uid, b.study_uid, a.series_uid, b.series_uid}) == 4
    first_a, first_b = (pydicom.dcmread(sorted(c.folder.glob("*.dcm"))[0]) for c in (a, b))
    assert first_a.SeriesInstanceUID == a.series_uid and first_b.StudyInstanceUID == b.study_uid
    assert first_a.SOPInstanceUID != first_b.SOPInstanceUID
    assert first_a.PixelData == first_b.PixelData
    assert len(list(a.folder.glob("*.dcm"))) == len(list(DEMO.glob("*.dcm")))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="count"):
        make_copies(DEMO, tmp_path, 0)
    with pytest.raises(ValueError, match="no \\*.dcm"):
        make_copies(tmp_path, tmp_path / "out", 1)


def test_summary_and_table():
    copies = [SeriesCopy(Path("."), "1", "2", send_s=1.0, job={
        "finished_at": 100.0 + k * 10, "timings": {"queue_wait": float(k), "total": 2.0}})
        for k in range(3)]
    stats = summary(copies, started=90.0)
    assert stats["span_s"] == 30.0 and stats["per_min"] == 6.0
    assert (stats["wait_median"], stats["wait_max"]) == (1.0, 2.0)
    table = report(stats, 500.0, None, "threshold", 32, 4)
    assert "6.0 series/min" in table and "500 MB" in table and "n/a" in table
