from pathlib import Path

import pydicom
import pytest

from orthanc_plugin.config import from_section
from orthanc_plugin.jobrunner import (
    check_selection,
    lesion_summary,
    parse_last_update,
    selection_rules,
)
from orthanc_plugin.jobstore import JobStore, RetryPolicy
from orthanc_plugin.orthanc_http import OrthancClient
from orthanc_plugin.results import lesion_table
from orthanc_plugin.worker import process_one
from pipeline.errors import SeriesRejected

REPO = Path(__file__).resolve().parents[2]
DEMO = sorted((REPO / "demo" / "LIDC-IDRI-0001").glob("*.dcm"))


@pytest.fixture(scope="module")
def demo_files():
    if not DEMO:
        pytest.skip("demo/LIDC-IDRI-0001 absent")
    return [p.read_bytes() for p in DEMO]


def test_demo_series_passes_selection(demo_files):
    check_selection(demo_files, 10)


def test_too_few_slices_rejected_with_reason(demo_files):
    with pytest.raises(SeriesRejected, match="NumberOfSlices 32 is not >= 40"):
        check_selection(demo_files, 40)
    with pytest.raises(SeriesRejected, match="no instances"):
        check_selection([], 10)


def test_localizer_rejected(demo_files, tmp_path):
    ds = pydicom.dcmread(DEMO[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.save_as(tmp_path / "x.dcm")
    data = (tmp_path / "x.dcm").read_bytes()
    with pytest.raises(SeriesRejected, match="LOCALIZER"):
        check_selection([data] * 20, 10)


def test_selection_rules_validate_min_slices():
    assert selection_rules(25)["NumberOfSlices"] == [25, ">="]
    with pytest.raises(ValueError, match="min_slices"):
        selection_rules(1)


def test_lesion_summary_and_table():
    lesion = {"label": 1, "volume_mm3": 5443.2, "long_axis_mm": 25.2, "short_axis_mm": 23.6,
              "mean_hu": 3.0, "key_slice": 15, "contour_points": 80, "long_axis_points": [[1, 2]]}
    summary = lesion_summary(lesion)
    assert "long_axis_points" not in summary and summary["volume_mm3"] == 5443.2
    table = lesion_table({"result": {"lesions": [summary]}})
    assert "5443.2" in table and "25.2" in table
    assert "no lesion" in lesion_table({"result": {"lesions": []}})


class _Segmenter:
    name, version = "lungseg threshold baseline", "threshold-test"


def test_unreachable_orthanc_makes_a_failed_job_not_a_crash(tmp_path):
    cfg = from_section({"WorkerPython": "/usr/bin/python3", "DataDir": str(tmp_path),
                        "Url": "http://127.0.0.1:9", "WorkerUser": "w", "WorkerPassword": "p"})
    store = JobStore(cfg.job_db)
    store.enqueue("abc", 3)
    job = store.claim_next()
    client = OrthancClient(cfg.url, "w", "p", timeout_s=5)
    done = process_one(store, client, _Segmenter(), None, job)
    assert done.state == "failed" and "OrthancHttpError" in done.reason
    assert done.timings["total"] >= 0 and "queue_wait" in done.timings


def test_unreachable_orthanc_is_retried_then_failed(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    store.enqueue("abc", 3)
    client = OrthancClient("http://127.0.0.1:9", "w", "p", timeout_s=5)
    policy = RetryPolicy(max_attempts=2, delay_s=0)
    first = process_one(store, client, _Segmenter(), None, store.claim_next(), policy)
    assert first.state == "queued" and "HTTP 0" in first.reason and "attempt 1 of 2" in first.reason
    second = process_one(store, client, _Segmenter(), None, store.claim_next(), policy)
    assert second.state == "failed" and "attempt 2 of 2; given up" in second.reason


def test_last_update_is_utc():
    assert parse_last_update("19700101T000130") == 90
    assert parse_last_update("") is None and parse_last_update(None) is None
    with pytest.raises(ValueError):
        parse_last_update("2026-11-27 05:00")
